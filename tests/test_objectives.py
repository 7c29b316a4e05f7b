"""Training rules: each returns (loss to minimise, detached value) built from the bounds; MINE's moving average."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from harness.errors import UserError
from plugins.estimators import bounds, objectives
from plugins.estimators.divergences import divergence

DIM_Y = 3

# name -> (objective factory, the bound its value must equal; None where a learned baseline enters)
RULES: dict[str, tuple[Callable[[], nn.Module], Callable[[Tensor], Tensor] | None]] = {
    "infonce": (objectives.InfoNCE, bounds.infonce_bound),
    "nwj": (objectives.NWJ, bounds.nwj_bound),
    "mine": (objectives.MINE, bounds.dv_bound),
    "js": (objectives.JS, bounds.js_value),
    "smile": (lambda: objectives.SMILE(tau=1.5), lambda s: bounds.smile_value(s, 1.5)),
    "tuba": (lambda: objectives.TUBA(dim_y=DIM_Y), None),
    "interpolated": (lambda: objectives.Interpolated(dim_y=DIM_Y, alpha=0.4), None),
    "nce": (lambda: objectives.NCE(negatives=2.0), bounds.nce_value),
    "fgan_hellinger": (lambda: objectives.FGAN(divergence("hellinger")),
                       lambda s: bounds.fgan_bound(s, divergence("hellinger"))),
}


class BilinearCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.3 * torch.randn(2, DIM_Y))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x @ self.weight @ y.mT


def batch(seed: int, size: int = 16) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 2, generator=g)
    y = torch.cat([x, x[:, :1]], dim=1) + 0.5 * torch.randn(size, DIM_Y, generator=g)
    return x, y


@pytest.mark.parametrize("name", sorted(RULES))
def test_objective_returns_scalar_loss_and_detached_value(name: str) -> None:
    torch.manual_seed(0)
    make, bound = RULES[name]
    objective, critic = make(), BilinearCritic()
    x, y = batch(1)
    scores = critic(x, y)
    loss, value = objective(scores, x, y)
    assert loss.shape == () and value.shape == ()
    assert loss.requires_grad and not value.requires_grad
    if bound is not None:
        assert value.item() == pytest.approx(bound(scores).item(), rel=1e-6)
    params = list(critic.parameters()) + list(objective.parameters())
    grads = torch.autograd.grad(loss, params)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["infonce", "nwj", "js", "smile", "tuba", "interpolated", "fgan_hellinger"])
def test_loss_is_minus_the_maximised_bound(name: str) -> None:
    objective = RULES[name][0]()
    x, y = batch(2)
    scores = BilinearCritic()(x, y)
    loss, _ = objective(scores, x, y)
    maximised = {
        "js": bounds.js_objective, "smile": bounds.js_objective,
        "tuba": lambda s: bounds.tuba_bound(s.mT, objective.log_baseline(y).squeeze(-1)),
        "interpolated": lambda s: bounds.interpolated_bound(s.mT, objective.log_baseline(y).squeeze(-1), 0.4),
    }.get(name, RULES[name][1])
    assert loss.item() == pytest.approx(-maximised(scores).item(), rel=1e-6)


def test_nce_loss_is_the_logistic_loss() -> None:
    x, y = batch(3)
    scores = BilinearCritic()(x, y)
    loss, _ = objectives.NCE(negatives=3.0)(scores, x, y)
    assert loss.item() == pytest.approx(bounds.nce_loss(scores, 3.0).item(), rel=1e-6)


def test_baselines_see_only_y() -> None:
    """TUBA's baseline a(y) must not change when x changes (it multiplies marginal pairs of that y)."""
    torch.manual_seed(4)
    tuba = objectives.TUBA(dim_y=DIM_Y)
    x, y = batch(5)
    scores = torch.zeros(16, 16)
    a, _ = tuba(scores, x, y)
    b, _ = tuba(scores, x + 10.0, y)
    assert a.item() == b.item()


def test_objectives_sum_loss_over_batched_critics() -> None:
    scores = torch.randn(4, 16, 16)
    x, y = batch(6)
    loss, value = objectives.InfoNCE()(scores, x, y)
    assert value.shape == (4,)
    assert loss.item() == pytest.approx(-bounds.infonce_bound(scores).sum().item(), rel=1e-6)


def test_mine_gradient_is_the_moving_average_formula() -> None:
    """d loss / d S_ii = -1/B and d loss / d S_ij = exp(S_ij) / (B(B-1) m), m <- (1-r) m + r mean exp(S)."""
    rate, size = 0.1, 8
    mine = objectives.MINE(rate=rate)
    g = torch.Generator().manual_seed(7)
    eye = torch.eye(size, dtype=torch.bool)
    m = None
    for step in range(3):
        scores = torch.randn(size, size, generator=g, dtype=torch.float64).requires_grad_(True)
        loss, value = mine(scores, None, None)
        (grad,) = torch.autograd.grad(loss, scores)
        batch_mean = scores.detach()[~eye].exp().mean().item()
        m = batch_mean if step == 0 else (1 - rate) * m + rate * batch_mean
        expected = (scores.detach().exp() / (size * (size - 1) * m)).masked_fill(eye, -1.0 / size)
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)
        assert math.exp(mine.log_moving_average.item()) == pytest.approx(m, rel=1e-12)
        assert value.item() == pytest.approx(bounds.dv_bound(scores).item(), rel=1e-12)


def test_mine_moving_average_keeps_no_graph_across_steps() -> None:
    torch.manual_seed(8)
    critic, mine = BilinearCritic(), objectives.MINE()
    for step in range(3):
        x, y = batch(10 + step)
        loss, _ = mine(critic(x, y), x, y)
        loss.backward()  # a second step would fail here if m still held the first step's graph
        assert mine.log_moving_average.requires_grad is False
        assert mine.log_moving_average.grad_fn is None


def test_mine_moving_average_is_frozen_in_eval_mode() -> None:
    mine = objectives.MINE()
    x, y = batch(11)
    mine(torch.randn(16, 16), x, y)
    before = mine.log_moving_average.clone()
    mine.eval()
    mine(torch.randn(16, 16) + 5.0, x, y)
    assert torch.equal(mine.log_moving_average, before)


def test_mine_moving_average_survives_overflowing_scores() -> None:
    """exp(S) overflows float32 at S > 88; the log-space average does not."""
    mine = objectives.MINE()
    scores = torch.full((8, 8), 200.0, requires_grad=True)
    loss, value = mine(scores, None, None)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(value) and torch.isfinite(scores.grad).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: objectives.MINE(rate=0.0),
        lambda: objectives.SMILE(tau=0.0),
        lambda: objectives.Interpolated(dim_y=2, alpha=1.5),
        lambda: objectives.NCE(negatives=0),
        lambda: objectives.TUBA(dim_y=0),
    ],
)
def test_bad_hyperparameters_are_user_errors(make: Callable[[], nn.Module]) -> None:
    with pytest.raises(UserError):
        make()
