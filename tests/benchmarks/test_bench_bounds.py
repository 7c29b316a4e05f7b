"""The bounds on score matrices: forward and backward at the batch sizes suites use."""

import pytest
import torch

from plugins.estimators import bounds

BOUNDS = {
    "infonce": bounds.infonce_bound,
    "nwj": bounds.nwj_bound,
    "dv": bounds.dv_bound,
    "js": bounds.js_objective,
    "smile": lambda s: bounds.smile_value(s, 5.0),
    "interpolated": lambda s: bounds.interpolated_bound(s, torch.zeros(s.shape[-1]), 0.5),
}


@pytest.mark.parametrize("batch", [64, 256, 1024])
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_bound_forward_and_backward(benchmark, name, batch):
    benchmark.group = f"bounds B={batch}"
    scores = torch.randn(batch, batch, generator=torch.Generator().manual_seed(0)).requires_grad_()

    def step():
        scores.grad = None
        value = BOUNDS[name](scores)
        value.backward()
        return value

    value = benchmark(step)
    assert torch.isfinite(value) and torch.isfinite(scores.grad).all()
