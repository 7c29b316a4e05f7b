"""One training step (forward, bound, backward, Adam) of the staircase critics: d = 20, hidden 256, B = 64."""

import pytest
import torch

from plugins.estimators.critics import CRITICS
from plugins.estimators.objectives import InfoNCE

DIM, BATCH = 20, 64


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_training_step(benchmark, critic):
    benchmark.group = "training step (staircase critic)"
    torch.manual_seed(0)
    model = CRITICS[critic](DIM, DIM, 256, 2, 32, "relu")
    objective = InfoNCE()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    x, y = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)

    def step():
        loss, value = objective(model(x, y), x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value

    assert torch.isfinite(benchmark(step))
