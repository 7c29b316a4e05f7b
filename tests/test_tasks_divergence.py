"""gaussian_pair: every f-divergence row against 1-D quadrature and, in higher dimension, Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from harness import registry
from plugins.estimators.divergences import DIVERGENCE_NAMES, parse_target

K_SIGMA = 4.5
TARGETS = [name for name in DIVERGENCE_NAMES if name != "alpha"] + ["alpha=0.5", "alpha=2", "alpha=-0.5", "alpha=3"]


def pair(**params):
    return registry.get("task", "gaussian_pair").instantiate(params)


def quadrature(target: str, shift: float, ratio: float) -> float:
    """int q f(p/q) over the widest symmetric range where p, q and p/q all stay representable
    (beyond it 0 * inf and overflow would replace the true tail)."""
    f = parse_target(target).f
    p, q = stats.norm(0, 1), stats.norm(shift, ratio)
    grid = np.linspace(-60, 60, 24_001)
    log_p, log_q = p.logpdf(grid), q.logpdf(grid)
    unsafe = (np.abs(log_p - log_q) > 300) | (log_p < -700) | (log_q < -700)
    reach = np.abs(grid[unsafe]).min()

    def integrand(z: float) -> float:
        with np.errstate(all="ignore"):
            value = q.pdf(z) * f(np.exp(p.logpdf(z) - q.logpdf(z)))
        return float(value) if np.isfinite(value) else math.inf

    breaks = np.linspace(-reach, reach, 13)
    return sum(integrate.quad(integrand, a, b, limit=200)[0] for a, b in zip(breaks, breaks[1:], strict=False))


@pytest.mark.parametrize("shift, ratio", [(1.0, 1.0), (0.5, 1.3), (-0.7, 0.8), (0.0, 0.6)])
@pytest.mark.parametrize("target", TARGETS)
def test_one_dimensional_ground_truth_matches_quadrature(target, shift, ratio):
    truth = pair(mean_shift=shift, scale_ratio=ratio).ground_truth(target)
    if math.isinf(truth.value):
        # a divergent Gaussian integral: its truncations keep growing without bound
        assert quadrature(target, shift, ratio) > 1e30
        return
    expected = quadrature(target, shift, ratio)
    assert abs(truth.value - expected) < K_SIGMA * truth.stderr + 1e-7 * (1 + abs(expected))


@pytest.mark.parametrize("target", TARGETS)
def test_three_dimensional_ground_truth_matches_monte_carlo_under_q(target):
    task = pair(dim=3, mean_shift=0.3, scale_ratio=1.1)
    truth = task.ground_truth(target)
    _, q = task.sample(100_000, np.random.default_rng(4))
    with np.errstate(all="ignore"):
        values = parse_target(target).f(np.exp(task.log_density_ratio(q)))
    stderr = math.hypot(values.std(ddof=1) / math.sqrt(len(values)), truth.stderr)
    assert abs(values.mean() - truth.value) < K_SIGMA * stderr


def test_log_density_ratio_matches_scipy_densities():
    task = pair(dim=2, mean_shift=0.4, scale_ratio=1.7)
    p, q = task.sample(100, np.random.default_rng(0))
    z = np.vstack([p, q])
    expected = (stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
                - stats.multivariate_normal(np.full(2, 0.4), 1.7**2 * np.eye(2)).logpdf(z))
    np.testing.assert_allclose(task.log_density_ratio(z), expected, rtol=1e-10, atol=1e-10)


def test_identical_distributions_have_zero_divergence():
    task = pair(dim=2, mean_shift=0.0, scale_ratio=1.0)
    for target in ["kl", "reverse_kl", "jeffrey", "hellinger", "pearson", "neyman", "tv", "alpha=0.5"]:
        assert task.ground_truth(target).value == pytest.approx(0.0, abs=1e-12)


def test_monte_carlo_rows_report_a_small_standard_error():
    task = pair(mean_shift=1.0, scale_ratio=1.5)
    for target in ["tv", "js", "gan_js"]:
        truth = task.ground_truth(target)
        assert 0 < truth.stderr < 0.01
