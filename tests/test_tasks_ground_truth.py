"""Non-Gaussian MI tasks: ground truths against independent computations (scipy densities, quadrature)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from harness import registry
from plugins.tasks import fdiv

K_SIGMA = 4.5


def task(name, **params):
    return registry.get("task", name).instantiate(params)


def assert_within(samples: np.ndarray, truth, k: float = K_SIGMA) -> None:
    stderr = math.hypot(samples.std(ddof=1) / math.sqrt(len(samples)), truth.stderr)
    assert abs(samples.mean() - truth.value) < k * stderr + 1e-9, (samples.mean(), truth, stderr)


@pytest.mark.parametrize("dim_x, dim_y, dof, pairs", [(1, 1, 1.0, 1), (2, 3, 3.0, 2), (2, 2, 5.0, 0)])
def test_student_t_mi_matches_monte_carlo_with_scipy_densities(dim_x, dim_y, dof, pairs):
    t = task("student_t", dim_x=dim_x, dim_y=dim_y, dof=dof, pairs=pairs, strength=1.5)
    joint = stats.multivariate_t(shape=t.dispersion, df=dof, seed=3)
    z = joint.rvs(40_000)
    z = z.reshape(len(z), -1)
    x, y = z[:, :dim_x], z[:, dim_x:]
    sxx, syy = t.dispersion[:dim_x, :dim_x], t.dispersion[dim_x:, dim_x:]
    log_ratio = (joint.logpdf(z) - stats.multivariate_t(shape=sxx, df=dof).logpdf(x)
                 - stats.multivariate_t(shape=syy, df=dof).logpdf(y))
    np.testing.assert_allclose(t.log_density_ratio(x, y), log_ratio, rtol=1e-9, atol=1e-9)
    assert_within(log_ratio, t.ground_truth())


def test_student_t_with_uncorrelated_dispersion_still_has_positive_mi():
    # the shared chi-square scale couples X and Y even when the dispersion is diagonal
    assert task("student_t", pairs=0, dof=2.0).ground_truth().value > 0.05
    assert task("student_t", pairs=0, dof=1e6).ground_truth().value == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 0.8, 2.0])
def test_additive_uniform_mi_is_output_entropy_minus_noise_entropy_by_quadrature(epsilon):
    def density(y):  # convolution of U(0, 1) with U(-eps, eps)
        return max(0.0, min(1.0, y + epsilon) - max(0.0, y - epsilon)) / (2 * epsilon)

    breaks = sorted({-epsilon, epsilon, 1 - epsilon, 1 + epsilon})
    entropy = -sum(integrate.quad(lambda y: density(y) * math.log(density(y)) if density(y) > 0 else 0.0, a, b)[0]
                   for a, b in zip(breaks, breaks[1:], strict=False))
    assert task("additive_uniform", epsilon=epsilon).ground_truth().value == pytest.approx(
        entropy - math.log(2 * epsilon), abs=1e-8)


@pytest.mark.parametrize("classes, spacing, sigma", [(2, 1.0, 0.5), (4, 1.0, 0.5), (3, 2.0, 0.6)])
def test_discrete_continuous_mi_matches_monte_carlo_of_scipy_densities(classes, spacing, sigma):
    t = task("discrete_continuous", classes=classes, spacing=spacing, sigma=sigma)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, classes, 40_000)
    y = rng.normal(spacing * labels, sigma)
    means = spacing * np.arange(classes)
    marginal = np.mean(stats.norm(means[None], sigma).pdf(y[:, None]), axis=1)
    log_ratio = stats.norm(spacing * labels, sigma).logpdf(y) - np.log(marginal)
    assert_within(log_ratio, t.ground_truth())
    assert t.ground_truth().value <= math.log(classes)


def test_well_separated_classes_carry_log_k_nats():
    assert task("discrete_continuous", classes=5, spacing=20.0, sigma=0.5).ground_truth().value == pytest.approx(
        math.log(5), abs=1e-6)


def test_mixture_x_mi_matches_monte_carlo_of_scipy_densities():
    rho = 0.8
    t = task("mixture_x", correlation=rho)
    arms = [stats.multivariate_normal([0, 0], [[1, s * rho], [s * rho, 1]]) for s in (-1, 1)]
    z = np.concatenate([arm.rvs(20_000, random_state=i) for i, arm in enumerate(arms)])
    # both marginals of the X are exactly N(0, 1)
    log_ratio = np.log(0.5 * arms[0].pdf(z) + 0.5 * arms[1].pdf(z)) - stats.norm.logpdf(z).sum(axis=1)
    assert_within(log_ratio, t.ground_truth())


@pytest.mark.parametrize("name", ["mixture_x", "mixture_ai", "galaxy", "concentric_gaussians",
                                  "multinormal_sparse_inliers"])
def test_mixture_ground_truths_use_at_least_1e5_samples_with_small_stderr(name):
    truth = task(name).ground_truth()
    assert 0 < truth.stderr < 0.01
    # the standard error of a mean of >= 1e5 terms is at most std / 316
    log_ratio = task(name).log_density_ratio(*task(name).sample(20_000, np.random.default_rng(1)))
    assert truth.stderr <= log_ratio.std() / math.sqrt(1e5) * 1.1


def test_inliers_dilute_the_sparse_gaussian_mi_down_to_zero():
    sparse = task("multinormal_sparse").ground_truth().value
    pure = task("multinormal_sparse_inliers", inlier_fraction=0.0).ground_truth()
    assert abs(pure.value - sparse) < K_SIGMA * pure.stderr
    diluted = task("multinormal_sparse_inliers", inlier_fraction=0.2).ground_truth().value
    assert 0 < diluted < pure.value
    assert task("multinormal_sparse_inliers", inlier_fraction=1.0).ground_truth().value == pytest.approx(0, abs=1e-12)


def test_concentric_gaussians_mi_is_below_the_entropy_of_the_component():
    truth = task("concentric_gaussians", dim_x=3, components=3).ground_truth()
    assert 0 < truth.value < math.log(3)


@pytest.mark.parametrize("name, params", [
    ("gaussian", {"dim": 1, "mi": 0.1}),
    ("multinormal_dense", {"dim_x": 2, "dim_y": 1, "correlation": 0.25}),
])
@pytest.mark.parametrize("target", ["reverse_kl", "jeffrey", "hellinger", "pearson", "neyman", "alpha=0.5",
                                    "alpha=2", "alpha=-0.5"])
def test_closed_form_f_information_matches_monte_carlo_over_product_samples(name, params, target):
    t = task(name, **params)
    closed = t.ground_truth(target)
    assert closed.stderr == 0 and math.isfinite(closed.value)
    mc = t.mc_f_information(fdiv.resolve(target), n=100_000)
    assert abs(mc.value - closed.value) < K_SIGMA * mc.stderr + 1e-12


def test_neyman_chi2_information_is_infinite_beyond_correlation_one_half():
    # int q^2 / p diverges once 2 I - Sigma^-1 has a negative eigenvalue: 2 - 1/(1 - rho) < 0
    rho = lambda mi: math.sqrt(1 - math.exp(-2 * mi))  # noqa: E731
    assert rho(0.5) > 0.5 and task("gaussian", dim=1, mi=0.5).ground_truth("neyman").value == math.inf
    assert rho(0.1) < 0.5 and math.isfinite(task("gaussian", dim=1, mi=0.1).ground_truth("neyman").value)


def test_f_information_without_closed_form_comes_with_its_stderr():
    t = task("gaussian", dim=1, mi=0.5)
    tv, js = t.ground_truth("tv"), t.ground_truth("js")
    assert 0 < tv.stderr < 0.01 and 0 < js.stderr < 0.01
    # Pinsker: TV <= sqrt(KL / 2); JS <= log 2
    assert 0 < tv.value <= math.sqrt(0.5 / 2) and 0 < js.value < math.log(2)
