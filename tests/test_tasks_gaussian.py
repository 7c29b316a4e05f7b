"""Gaussian tasks: closed-form MI against independent computations."""

import numpy as np
import pytest
from scipy import stats

from harness import registry

K_SIGMA = 4.5  # tolerance of every Monte-Carlo comparison, in standard errors


def task(name, **params):
    return registry.get("task", name).instantiate(params)


def log_det_mi(covariance: np.ndarray, dim_x: int) -> float:
    logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return 0.5 * (logdet(covariance[:dim_x, :dim_x]) + logdet(covariance[dim_x:, dim_x:]) - logdet(covariance))


@pytest.mark.parametrize("dim, mi", [(1, 0.5), (3, 2.0), (20, 10.0)])
def test_gaussian_mi_matches_log_det_of_staircase_covariance(dim, mi):
    rho = np.sqrt(1 - np.exp(-2 * mi / dim))
    eye = np.eye(dim)
    covariance = np.block([[eye, rho * eye], [rho * eye, eye]])
    assert task("gaussian", dim=dim, mi=mi).ground_truth().value == pytest.approx(log_det_mi(covariance, dim), rel=1e-10)


@pytest.mark.parametrize("level", [2.0, 4.0, 6.0, 8.0, 10.0])
def test_staircase_level_is_minus_half_d_log_one_minus_rho_squared(level):
    t = task("staircase", mi=level)
    x, y = t.sample(20_000, np.random.default_rng(0))
    rho = np.mean(np.sum(x * y, axis=0) / np.sqrt(np.sum(x**2, axis=0) * np.sum(y**2, axis=0)))
    assert (t.dim_x, t.dim_y) == (20, 20)
    assert t.ground_truth().value == pytest.approx(-(20 / 2) * np.log(1 - rho**2), rel=0.02)
    assert t.ground_truth().value == pytest.approx(level, abs=1e-9)


def test_dense_and_sparse_mi_match_log_det_formula():
    dense = task("multinormal_dense", dim_x=2, dim_y=3, correlation=0.4)
    c = np.full((5, 5), 0.4) + 0.6 * np.eye(5)
    assert dense.ground_truth().value == pytest.approx(log_det_mi(c, 2), rel=1e-10)
    sparse = task("multinormal_sparse", dim_x=3, dim_y=4, pairs=2, strength=2.0)
    # two independent pairs with correlation 4/5 carry -log(1 - 0.8^2) nats together
    assert sparse.ground_truth().value == pytest.approx(-np.log(1 - 0.8**2), rel=1e-10)


@pytest.mark.parametrize("name, params", [
    ("gaussian", {"dim": 2, "mi": 1.5}),
    ("multinormal_dense", {"dim_x": 2, "dim_y": 2, "correlation": 0.6}),
    ("multinormal_sparse", {"dim_x": 3, "dim_y": 2, "pairs": 2, "strength": 1.0}),
])
def test_log_density_ratio_matches_scipy_densities(name, params):
    t = task(name, **params)
    x, y = t.sample(200, np.random.default_rng(1))
    joint = stats.multivariate_normal(np.zeros(t.dim_x + t.dim_y), t.covariance)
    px = stats.multivariate_normal(np.zeros(t.dim_x), t.covariance[: t.dim_x, : t.dim_x])
    py = stats.multivariate_normal(np.zeros(t.dim_y), t.covariance[t.dim_x :, t.dim_x :])
    expected = joint.logpdf(np.hstack([x, y])) - px.logpdf(x) - py.logpdf(y)
    np.testing.assert_allclose(t.log_density_ratio(x, y), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, params", [
    ("staircase", {"mi": 6.0}),
    ("staircase_cubic", {"mi": 2.0}),
    ("multinormal_dense", {"dim_x": 5, "dim_y": 5, "correlation": 0.5}),
    ("high_mi", {"pairs": 3, "mi_per_pair": 5.0}),
])
def test_mean_log_density_ratio_under_the_joint_recovers_mi(name, params):
    t = task(name, **params)
    log_ratio = t.log_density_ratio(*t.sample(20_000, np.random.default_rng(2)))
    stderr = log_ratio.std(ddof=1) / np.sqrt(len(log_ratio))
    assert abs(log_ratio.mean() - t.ground_truth().value) < K_SIGMA * stderr


def test_staircase_cubic_is_the_staircase_with_y_cubed():
    base, cubic = task("staircase", mi=4.0), task("staircase_cubic", mi=4.0)
    (x0, y0), (x1, y1) = base.sample(500, np.random.default_rng(3)), cubic.sample(500, np.random.default_rng(3))
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_allclose(y1, y0**3)
    np.testing.assert_allclose(cubic.log_density_ratio(x1, y1), base.log_density_ratio(x0, y0), atol=1e-8)
    assert cubic.ground_truth() == base.ground_truth()


def test_impossible_correlations_are_user_errors():
    from harness.errors import UserError

    with pytest.raises(UserError, match="not positive definite"):
        task("multinormal_dense", dim_x=2, dim_y=2, correlation=-0.5)
    with pytest.raises(UserError, match="pairs=3"):
        task("multinormal_sparse", dim_x=2, dim_y=5, pairs=3)
