"""Claims of MATH.md about the MI bounds, checked with the true log density ratio of a Gaussian.

Tolerances are k standard errors of the mean over independent batches, plus the finite-batch
bias where the bound has one (derived in each test's docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from plugins.estimators import bounds
from plugins.estimators.divergences import divergence

K_SE = 4.0  # two-sided normal tail 6e-5; the seeds are fixed, so a pass is reproducible


def gaussian_log_ratio(batch: int, dim: int, mi: float, rng: np.random.Generator) -> Tensor:
    """S_ij = log p(x_i, y_j) / (p(x_i) p(y_j)) for x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps."""
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / dim))
    c = 1.0 - rho**2
    x = torch.from_numpy(rng.standard_normal((batch, dim)))
    y = rho * x + math.sqrt(c) * torch.from_numpy(rng.standard_normal((batch, dim)))
    quadratic = rho**2 * ((x**2).sum(1)[:, None] + (y**2).sum(1)[None, :]) - 2.0 * rho * x @ y.T
    return -0.5 * dim * math.log(c) - quadratic / (2.0 * c)


def chi_square(mi: float) -> float:
    """chi^2(joint || product) = E_joint[r] - 1 = e^{2I} - 1 for the Gaussian above (any d)."""
    return math.expm1(2.0 * mi)


def batch_estimates(fn: Callable[[Tensor], Tensor], batches: int, batch: int, dim: int, mi: float,
                    seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = np.array([fn(gaussian_log_ratio(batch, dim, mi, rng)).item() for _ in range(batches)])
    return values.mean(), values.std(ddof=1) / math.sqrt(batches)


def with_control_variate(fn: Callable[[Tensor], Tensor], mi: float) -> Callable[[Tensor], Tensor]:
    """fn(S) - mean_i S_ii + I: same expectation (E_joint log r = I), without the noise of the positive
    term, so the finite-batch bias of the partition term is resolved."""
    return lambda s: fn(s) - bounds.positive_mean(s) + mi


def test_score_helper_is_the_true_log_ratio() -> None:
    """Sanity of the helper itself: E_joint[log r] = I and E_product[r] = 1."""
    rng = np.random.default_rng(0)
    s = gaussian_log_ratio(2000, 3, 0.7, rng)
    diag = s.diagonal()
    assert abs(diag.mean().item() - 0.7) <= K_SE * diag.std().item() / math.sqrt(2000)
    r = bounds.mean_offdiag(s.exp()).item()
    assert abs(r - 1.0) <= K_SE * math.sqrt(chi_square(0.7) / 2000)


UNBIASED: dict[str, Callable[[Tensor], Tensor]] = {
    "nwj with critic 1 + log r": lambda s: bounds.nwj_bound(s + 1.0),
    "tuba with log a = 1, critic 1 + log r": lambda s: bounds.tuba_bound(s + 1.0, torch.ones_like(s[0])),
    "js value with critic log r": bounds.js_value,
    "nce plug-in with critic log r": bounds.nce_value,
    "f-gan kl with critic 1 + log r": lambda s: bounds.fgan_bound(s + 1.0, divergence("kl")),
}


@pytest.mark.parametrize("name", sorted(UNBIASED))
def test_optimal_critic_recovers_mi(name: str) -> None:
    mi = 1.0
    mean, se = batch_estimates(UNBIASED[name], batches=30, batch=256, dim=2, mi=mi, seed=1)
    assert abs(mean - mi) <= K_SE * se, (mean, se)


def test_dv_with_true_critic_recovers_mi() -> None:
    """E[DV] - I = E[-log Z], Z = mean_offdiag r with E Z = 1: >= 0 and of order Var Z ~ chi^2 / B^2."""
    mi, batch = 1.0, 256
    mean, se = batch_estimates(with_control_variate(bounds.dv_bound, mi), batches=30, batch=batch, dim=2, mi=mi,
                               seed=2)
    assert mi - K_SE * se <= mean <= mi + K_SE * se + chi_square(mi) / (batch * (batch - 1)), (mean, se)


def test_infonce_with_true_critic_lies_within_its_finite_batch_bias() -> None:
    """E[InfoNCE] = I - E log((1/B) sum_j r_ij) and, by Jensen, 0 <= I - E[InfoNCE] <= log(1 + chi^2 / B)."""
    mi, batch = 0.5, 512
    mean, se = batch_estimates(with_control_variate(bounds.infonce_bound, mi), batches=30, batch=batch, dim=2,
                               mi=mi, seed=3)
    bias = math.log1p(chi_square(mi) / batch)
    assert mi - bias - K_SE * se <= mean <= mi + K_SE * se, (mean, se, bias)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_interpolated_with_true_critic_lies_within_its_finite_batch_bias(alpha: float) -> None:
    """With f = log r and b = 0: the joint term loses at most log(1 + alpha chi^2 / (B-1)) (Jensen) and the
    marginal term E[m / (alpha m + 1 - alpha)] <= 1 (concave in m, E m = 1), so the value is in
    [I - alpha chi^2 / (B-1), I]."""
    mi, batch = 1.0, 256

    def value(s: Tensor) -> Tensor:
        return bounds.interpolated_bound(s.T, torch.zeros(batch, dtype=s.dtype), alpha)

    mean, se = batch_estimates(with_control_variate(value, mi), batches=30, batch=batch, dim=2, mi=mi, seed=4)
    bias = math.log1p(alpha * chi_square(mi) / (batch - 1))
    assert mi - bias - K_SE * se <= mean <= mi + K_SE * se, (mean, se, bias)


def adversarial_score_matrices(batch: int, seed: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(batch, dtype=torch.bool)
    out = []
    for scale in (1e-3, 1.0, 30.0, 1e4):
        out.append(scale * torch.randn(batch, batch, generator=g))
        out.append((scale * torch.randn(batch, batch, generator=g)).masked_fill(eye, 10 * scale))
    out.append(torch.full((batch, batch), -1e30).masked_fill(eye, 1e30))
    out.append(torch.zeros(batch, batch).masked_fill(~eye, -math.inf))
    return out


@pytest.mark.parametrize("batch", [2, 64])
def test_infonce_never_exceeds_log_batch(batch: int) -> None:
    log_batch = torch.tensor(math.log(batch)).item()  # log B as the float32 the bound adds
    for scores in adversarial_score_matrices(batch, seed=batch):
        assert bounds.infonce_bound(scores).item() <= log_batch


def test_infonce_saturates_at_log_batch_for_a_perfect_critic() -> None:
    eye = torch.eye(64, dtype=torch.bool)
    value = bounds.infonce_bound(torch.zeros(64, 64).masked_fill(eye, 200.0)).item()
    assert value == pytest.approx(math.log(64), abs=1e-6)


@pytest.mark.parametrize("batch", [3, 64])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_interpolated_bound_is_capped_by_log_batch_over_alpha(batch: int, alpha: float) -> None:
    """Each joint term has S_ii inside alpha times its own leave-one-out average, so it is at most
    log((B-1)/alpha), and the marginal term is >= 0; at alpha = 1 the marginal term is exactly 1, so
    the value is an InfoNCE over B - 1 samples, capped at log(B - 1)."""
    cap = math.log(batch - 1) if alpha == 1.0 else 1.0 + math.log((batch - 1) / alpha)
    for scores in adversarial_score_matrices(batch, seed=batch)[:-2]:
        value = bounds.interpolated_bound(scores.double(), torch.zeros(batch, dtype=torch.float64), alpha)
        assert value.item() <= cap + 1e-15 * scores.abs().max().item()


def test_interpolated_at_alpha_zero_is_tuba() -> None:
    g = torch.Generator().manual_seed(5)
    scores, baseline = torch.randn(32, 32, generator=g, dtype=torch.float64), torch.randn(32, generator=g,
                                                                                           dtype=torch.float64)
    assert bounds.interpolated_bound(scores, baseline, 0.0).item() == pytest.approx(
        bounds.tuba_bound(scores, baseline).item(), rel=1e-12)
    near = bounds.interpolated_bound(scores, baseline, 1e-12).item()
    assert near == pytest.approx(bounds.tuba_bound(scores, baseline).item(), rel=1e-9)


def test_interpolated_gradient_is_finite_at_both_ends_and_for_dominated_rows() -> None:
    scores = torch.randn(16, 16, dtype=torch.float64)
    scores[3, 5] = 600.0  # the rest of row 3 underflows against this entry (e^-600 < eps)
    for alpha in (0.0, 0.3, 1.0):
        s = scores.clone().requires_grad_(True)
        b = torch.zeros(16, dtype=torch.float64, requires_grad=True)
        bounds.interpolated_bound(s, b, alpha).backward()
        assert torch.isfinite(s.grad).all()
        assert b.grad is None if alpha == 1.0 else torch.isfinite(b.grad).all()


def test_leave_one_out_matches_direct_computation() -> None:
    g = torch.Generator().manual_seed(6)
    scores = 5.0 * torch.randn(7, 7, generator=g, dtype=torch.float64)
    scores[2, 4] = 900.0
    scores[5, 1] = scores[5, 6] = 40.0  # a tie at the maximum
    loo = bounds.leave_one_out_log_mean_exp(scores)
    for i in range(7):
        for j in range(7):
            rest = torch.cat([scores[i, :j], scores[i, j + 1:]])
            assert loo[i, j].item() == pytest.approx((rest.logsumexp(0) - math.log(6)).item(), rel=1e-12, abs=1e-12)


def test_js_value_has_no_minus_one_over_e_offset() -> None:
    """With the true log ratio at B = 1024, I = 2: nwj(S + 1) recovers I; the copied nwj(S) gives I - 1/e = 1.632."""
    mi = 2.0
    fixed, se_fixed = batch_estimates(bounds.js_value, batches=6, batch=1024, dim=1, mi=mi, seed=7)
    biased, se_biased = batch_estimates(bounds.nwj_bound, batches=6, batch=1024, dim=1, mi=mi, seed=7)
    assert abs(fixed - mi) <= K_SE * se_fixed
    assert abs(biased - (mi - math.exp(-1.0))) <= K_SE * se_biased
    assert biased == pytest.approx(1.631, abs=0.03)


def test_js_objective_is_the_deep_infomax_softplus_form() -> None:
    scores = 3.0 * torch.randn(16, 16, dtype=torch.float64)
    eye = torch.eye(16, dtype=torch.bool)
    expected = -F.softplus(-scores.diagonal()).mean() - F.softplus(scores[~eye]).mean()
    assert bounds.js_objective(scores).item() == pytest.approx(expected.item(), rel=1e-12)


def gradient_at_true_critic(loss: Callable[[Tensor], Tensor], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of loss(scale * log r + shift) at (1, 0) over batches: mean and standard error."""
    rng = np.random.default_rng(seed)
    grads = []
    for _ in range(30):
        s = gaussian_log_ratio(256, 2, 1.0, rng)
        params = torch.tensor([1.0, 0.0], dtype=s.dtype, requires_grad=True)
        (grad,) = torch.autograd.grad(loss(params[0] * s + params[1]), params)
        grads.append(grad.numpy())
    grads = np.array(grads)
    return grads.mean(0), grads.std(0, ddof=1) / math.sqrt(len(grads))


def test_js_objective_is_stationary_at_the_log_ratio() -> None:
    """Its optimal critic is log r: E_P[sigmoid(-log r)] = E_Q[sigmoid(log r)]."""
    mean, se = gradient_at_true_critic(bounds.js_objective, seed=8)
    assert (np.abs(mean) <= K_SE * se).all(), (mean, se)


@pytest.mark.parametrize("negatives", [1.0, 4.0])
def test_nce_loss_is_stationary_at_the_log_ratio(negatives: float) -> None:
    """With logit log r - log nu: E_P[nu / (r + nu)] = nu E_Q[r / (r + nu)]."""
    mean, se = gradient_at_true_critic(lambda s: bounds.nce_loss(s, negatives), seed=9)
    assert (np.abs(mean) <= K_SE * se).all(), (mean, se)


def test_nwj_is_tuba_with_constant_baseline_and_fgan_kl() -> None:
    scores = 2.0 * torch.randn(20, 20, dtype=torch.float64)
    shift = torch.randn(20, dtype=torch.float64)
    nwj = bounds.nwj_bound(scores + 1.0).item()
    assert bounds.tuba_bound(scores + shift[:, None], shift).item() == pytest.approx(nwj, rel=1e-12)
    assert bounds.fgan_bound(scores + 1.0, divergence("kl")).item() == pytest.approx(nwj, rel=1e-12)
    explicit = scores.diagonal().mean() + 1.0 - scores[~torch.eye(20, dtype=torch.bool)].exp().mean()
    assert nwj == pytest.approx(explicit.item(), rel=1e-12)


def test_smile_is_dv_when_tau_is_infinite_or_above_every_score() -> None:
    scores = 4.0 * torch.randn(32, 32, dtype=torch.float64)
    dv = bounds.dv_bound(scores).item()
    assert bounds.smile_value(scores, math.inf).item() == dv
    assert bounds.smile_value(scores, scores.abs().max().item() + 1.0).item() == pytest.approx(dv, rel=1e-14)


@pytest.mark.parametrize("tau", [0.5, 5.0])
def test_smile_partition_term_stays_within_tau(tau: float) -> None:
    """Clipping bounds the log-partition to [-tau, tau], hence the variance bound of Song & Ermon's Thm 3."""
    for scores in adversarial_score_matrices(16, seed=10)[:-2]:
        pos = bounds.positive_mean(scores).item()
        value = bounds.smile_value(scores, tau).item()
        assert pos - tau - 1e-4 * abs(pos) <= value <= pos + tau + 1e-4 * abs(pos)


def test_log_mean_exp_offdiag_ignores_the_diagonal() -> None:
    scores = torch.randn(8, 8, dtype=torch.float64)
    eye = torch.eye(8, dtype=torch.bool)
    expected = scores[~eye].exp().mean().log().item()
    assert bounds.log_mean_exp_offdiag(scores.masked_fill(eye, math.inf)).item() == pytest.approx(expected, rel=1e-12)
    assert bounds.log_mean_exp_offdiag(scores + 1000.0).item() == pytest.approx(expected + 1000.0, rel=1e-12)


ALL_BOUNDS: dict[str, Callable[[Tensor], Tensor]] = {
    "dv": bounds.dv_bound,
    "nwj": bounds.nwj_bound,
    "infonce": bounds.infonce_bound,
    "js_objective": bounds.js_objective,
    "js_value": bounds.js_value,
    "smile": lambda s: bounds.smile_value(s, 2.0),
    "tuba": lambda s: bounds.tuba_bound(s, s[..., 0, :].cos()),
    "interpolated": lambda s: bounds.interpolated_bound(s, s[..., 0, :].sin(), 0.3),
    "nce_loss": lambda s: bounds.nce_loss(s, 3.0),
    "nce_value": bounds.nce_value,
    "fgan_jeffrey": lambda s: bounds.fgan_bound(s, divergence("jeffrey")),
}


@pytest.mark.parametrize("name", sorted(ALL_BOUNDS))
def test_bounds_accept_leading_dimensions(name: str) -> None:
    scores = torch.randn(3, 2, 9, 9, dtype=torch.float64)
    batched = ALL_BOUNDS[name](scores)
    assert batched.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert batched[i, j].item() == pytest.approx(ALL_BOUNDS[name](scores[i, j]).item(), rel=1e-12)


@pytest.mark.parametrize("name", sorted(ALL_BOUNDS))
def test_bounds_are_differentiable_scalars(name: str) -> None:
    scores = torch.randn(12, 12, requires_grad=True)
    value = ALL_BOUNDS[name](scores)
    assert value.shape == ()
    value.backward()
    assert torch.isfinite(scores.grad).all()


def test_a_non_square_score_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        bounds.infonce_bound(torch.zeros(4, 5))


def test_infonce_gradient_is_the_logsumexp_gradient() -> None:
    # The fused backward (kept softmax) must equal autograd through the textbook formula,
    # with leading group dimensions and an upstream gradient that differs per matrix.
    scores = torch.randn(3, 7, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    (bounds.infonce_bound(scores) * weights).sum().backward()
    fused = scores.grad.clone()
    scores.grad = None
    textbook = math.log(7) + (scores.diagonal(dim1=-2, dim2=-1) - scores.logsumexp(-1)).mean(-1)
    (textbook * weights).sum().backward()
    torch.testing.assert_close(fused, scores.grad, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(bounds.infonce_bound, (scores.detach()[0].requires_grad_(),))
