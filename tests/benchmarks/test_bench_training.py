"""One training step (forward, bound, backward, Adam) of the staircase critics: d = 20, hidden 256, B = 64.

Each critic as plain nn.Linear layers and as the estimators train it, a group of one (GroupedLinear,
whose large layers multiply through oneDNN where plugins.estimators.cpu_gemm finds that faster).
"""

import pytest
import torch

from plugins.estimators.critics import CRITICS, stack_critics
from plugins.estimators.objectives import InfoNCE

DIM, BATCH = 20, 64


@pytest.mark.parametrize("layers", ["nn.Linear", "group of one"])
@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_training_step(benchmark, critic, layers):
    benchmark.group = f"training step (staircase critic, {critic})"
    torch.manual_seed(0)
    model = CRITICS[critic](DIM, DIM, 256, 2, 32, "relu")
    x, y = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)
    if layers == "group of one":
        model, x, y = stack_critics([model]), x.unsqueeze(0), y.unsqueeze(0)
    objective = InfoNCE()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step():
        loss, value = objective(model(x, y), x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        return value

    assert torch.isfinite(benchmark(step)).all()
