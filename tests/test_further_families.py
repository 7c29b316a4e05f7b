"""The KDE and Gaussian-mixture plug-in estimators, and the discrete tasks, against independent computations.

Tolerances are k standard errors (k = 4 unless said) of a Monte-Carlo or count estimate, plus, where an
estimator has a known bias, the bias derived or measured once with many more seeds, as written beside the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import special, stats

from harness import Budget, registry
from harness.errors import UserError
from plugins.estimators import kde
from plugins.estimators.gmm import Mixture, gmm_mi, mixture_mi
from plugins.estimators.paired_samples import InvalidSamples
from plugins.tasks import fdiv

K_SE = 4.0
RHO = 0.6
GAUSSIAN_MI = -0.5 * math.log1p(-RHO**2)


def task(name, **params):
    return registry.get("task", name).instantiate(params)


def estimator(name, **params):
    return registry.get("estimator", name).instantiate(params)


def bivariate_gaussian(n: int, seed: int, rho: float = RHO) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, 1))


def assert_mean_within(values: np.ndarray, truth: float, k: float = K_SE, truth_stderr: float = 0.0) -> None:
    stderr = math.hypot(values.std(ddof=1) / math.sqrt(len(values)), truth_stderr)
    assert abs(values.mean() - truth) < k * stderr, (values.mean(), truth, stderr)


def count_mi(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Miller-Madow plug-in MI of two integer codes and its delta-method standard error sd(pmi_hat) / sqrt(n)."""
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    n = len(a)
    p = joint / n
    product = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    occupied = p > 0
    pmi = np.log(p[occupied] / product[occupied])
    plug_in = float(np.sum(p[occupied] * pmi))
    cells = np.count_nonzero(occupied) - np.count_nonzero(p.sum(axis=1)) - np.count_nonzero(p.sum(axis=0)) + 1
    stderr = math.sqrt(max(np.sum(p[occupied] * pmi**2) - plug_in**2, 0.0) / n)
    return plug_in + cells / (2 * n), stderr


# ---------------------------------------------------------------- quantized_gaussian


@pytest.mark.parametrize("rho, bins, span", [(0.7, 4, 1.5), (-0.3, 6, 2.5), (0.99, 5, 1.0)])
def test_quantized_gaussian_cells_are_scipys_bivariate_normal_rectangles(rho, bins, span):
    t = task("quantized_gaussian", correlation=rho, bins=bins, span=span)
    edges = np.concatenate([[-np.inf], np.linspace(-span, span, bins + 1)[1:-1], [np.inf]])
    lower = np.array([[a, b] for a in edges[:-1] for b in edges[:-1]])
    upper = np.array([[a, b] for a in edges[1:] for b in edges[1:]])
    cells = stats.multivariate_normal.cdf(upper, mean=[0, 0], cov=[[1, rho], [rho, 1]], lower_limit=lower,
                                          rng=np.random.default_rng(0)).reshape(bins, bins)
    np.testing.assert_allclose(t.cells, cells, atol=1e-9)
    product = cells.sum(axis=1, keepdims=True) * cells.sum(axis=0, keepdims=True)
    assert t.ground_truth().value == pytest.approx(float(np.sum(special.xlogy(cells, cells / product))), abs=1e-8)


def test_quantized_gaussian_mi_matches_a_large_sample_count_estimate():
    t = task("quantized_gaussian", correlation=0.8, bins=6, span=2.0)
    x, y = t.sample(400_000, np.random.default_rng(1))
    value, stderr = count_mi(x[:, 0], y[:, 0])
    assert abs(value - t.ground_truth().value) < K_SE * stderr


def test_quantized_gaussian_approaches_the_gaussian_mi_from_below():
    # data processing: any quantisation loses information; width 0.06 cells lose about 2e-4 nats at rho 0.6
    values = [task("quantized_gaussian", correlation=RHO, bins=bins, span=6.0).ground_truth().value
              for bins in (4, 16, 200)]
    assert values[0] < values[1] < values[2] < GAUSSIAN_MI
    assert values[2] == pytest.approx(GAUSSIAN_MI, abs=5e-4)


def test_quantized_gaussian_pairs_add_and_independent_pairs_carry_nothing():
    one, two = task("quantized_gaussian", dim=1), task("quantized_gaussian", dim=2)
    assert two.ground_truth().value == pytest.approx(2 * one.ground_truth().value, rel=1e-12)
    assert two.entropy("y") == pytest.approx(2 * one.entropy("y"), rel=1e-12)
    x, y = two.sample(1000, np.random.default_rng(2))
    by_coordinate = one.log_density_ratio(x[:, :1], y[:, :1]) + one.log_density_ratio(x[:, 1:], y[:, 1:])
    np.testing.assert_allclose(two.log_density_ratio(x, y), by_coordinate, rtol=1e-12)
    assert abs(task("quantized_gaussian", correlation=0.0).ground_truth().value) < 1e-12


def test_quantized_gaussian_entropy_is_that_of_the_normal_cell_masses():
    t = task("quantized_gaussian", dim=3, bins=7, span=1.8)
    masses = np.diff(stats.norm.cdf(np.linspace(-1.8, 1.8, 8)[1:-1], loc=0, scale=1), prepend=0.0, append=1.0)
    expected = 3 * float(-np.sum(masses * np.log(masses)))
    assert t.entropy("x") == pytest.approx(expected, rel=1e-10) and t.entropy("y") == t.entropy("x")


# ---------------------------------------------------------------- noisy_channel


@pytest.mark.parametrize("k, eps", [(2, 0.1), (4, 0.2), (5, 0.0), (3, 2 / 3), (6, 1.0)])
def test_noisy_channel_mi_is_the_brute_force_sum_over_its_table(k, eps):
    total = 0.0
    for x in range(k):
        for y in range(k):
            joint = (1 - eps) / k if x == y else eps / (k * (k - 1))
            total += joint * math.log(joint / (1 / k * 1 / k)) if joint > 0 else 0.0
    t = task("noisy_channel", symbols=k, flip_probability=eps)
    assert t.ground_truth().value == pytest.approx(total, abs=1e-12)
    assert t.entropy("x") == t.entropy("y") == pytest.approx(math.log(k))


def test_noisy_channel_mi_matches_a_large_sample_count_estimate():
    t = task("noisy_channel", symbols=5, flip_probability=0.3)
    x, y = t.sample(300_000, np.random.default_rng(3))
    assert np.array_equal(np.unique(y), np.arange(5.0))
    value, stderr = count_mi(x[:, 0], y[:, 0])
    assert abs(value - t.ground_truth().value) < K_SE * stderr


# ---------------------------------------------------------------- discrete_continuous and all three


def test_discrete_continuous_entropies_give_its_mi():
    t = task("discrete_continuous", classes=3, spacing=1.5, sigma=0.7)
    noise_entropy = 0.5 * math.log(2 * math.pi * math.e * 0.7**2)
    assert t.entropy("y") - noise_entropy == pytest.approx(t.ground_truth().value, abs=1e-8)
    assert t.entropy("x") == pytest.approx(math.log(3))
    rng = np.random.default_rng(4)
    y = rng.normal(1.5 * rng.integers(0, 3, 100_000), 0.7)
    log_p = np.log(np.mean(stats.norm(1.5 * np.arange(3)[None], 0.7).pdf(y[:, None]), axis=1))
    assert_mean_within(-log_p, t.entropy("y"))


@pytest.mark.parametrize("name, params", [
    ("discrete_continuous", {"classes": 4, "sigma": 0.4}),
    ("noisy_channel", {"symbols": 4, "flip_probability": 0.25}),
    ("quantized_gaussian", {"dim": 2, "correlation": 0.9}),
])
def test_mean_pointwise_mi_under_the_joint_is_the_mi(name, params):
    t = task(name, **params)
    assert_mean_within(t.log_density_ratio(*t.sample(50_000, np.random.default_rng(5))), t.ground_truth().value)


@pytest.mark.parametrize("name, params", [("noisy_channel", {"flip_probability": 0.1}), ("quantized_gaussian", {})])
@pytest.mark.parametrize("target", ["hellinger", "tv", "alpha=0.5"])
def test_exact_f_informations_match_the_monte_carlo_path(name, params, target):
    t = task(name, **params)
    monte_carlo = t.mc_f_information(fdiv.resolve(target), n=100_000)
    assert abs(t.ground_truth(target).value - monte_carlo.value) < 4.5 * monte_carlo.stderr + 1e-12


def test_bad_task_parameters_sides_and_targets_are_refused():
    for name, params in [("quantized_gaussian", {"bins": 1}), ("quantized_gaussian", {"correlation": 1.0}),
                         ("noisy_channel", {"symbols": 1}), ("noisy_channel", {"flip_probability": 1.5})]:
        with pytest.raises(ValidationError):
            task(name, **params)
    for name in ("quantized_gaussian", "noisy_channel", "discrete_continuous"):
        with pytest.raises(UserError, match="entropy side 'z'"):
            task(name).entropy("z")
        with pytest.raises(UserError, match="An MI task also answers: mi"):
            task(name).ground_truth("kullback")


# ---------------------------------------------------------------- kde


def test_kde_leave_one_out_densities_are_the_brute_force_sums():
    z = np.random.default_rng(6).standard_normal((30, 2))
    bandwidths = np.array([0.3, 0.8])
    got = kde.loo_log_densities(z, bandwidths)
    for b, h in enumerate(bandwidths):
        for i in range(len(z)):
            others = np.delete(z, i, axis=0)
            density = stats.multivariate_normal(z[i], h**2 * np.eye(2)).pdf(others).mean()
            assert got[b, i] == pytest.approx(math.log(density), rel=1e-10)


def test_kde_cross_validation_picks_the_grid_bandwidth_of_highest_leave_one_out_likelihood():
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.normal(-3, 0.3, (200, 1)), rng.normal(3, 0.3, (200, 1))])  # bimodal: Scott oversmooths
    z = (z - z.mean()) / z.std()
    entropy, bandwidth, multiple = kde.fitted_entropy(z, "cv")
    scott = kde.scott_bandwidth(400, 1)
    grid = [kde.loo_entropy(z, scott * m) for m in kde.SCOTT_MULTIPLES]
    assert entropy == pytest.approx(min(grid), rel=1e-12) and bandwidth == pytest.approx(scott * multiple)
    assert multiple < 1.0


def test_kde_flags_a_cross_validated_bandwidth_at_an_end_of_the_grid():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-3, 0.1, (150, 1)), rng.normal(3, 0.1, (150, 1))])
    y = rng.standard_normal((300, 1))
    cv = estimator("kde", bandwidth="cv", interval_resamples=0).fit_estimate(x, y, Budget(), "cpu", 0)
    assert cv.diagnostics["scott_multiples"]["x"] == kde.SCOTT_MULTIPLES[0]
    assert "for x, xy:" in cv.flags["bandwidth_at_grid_edge"]
    assert estimator("kde", interval_resamples=0).fit_estimate(x, y, Budget(), "cpu", 0).flags == {}


def gaussian_smoothing_bias(n: int, rho: float) -> float:
    """E[KDE plug-in] - I to first order for a standardised bivariate Gaussian with Scott's bandwidths: each
    resubstitution entropy tends to the cross-entropy E_p[-log (p * N(0, h^2 I))], for a Gaussian
    sum over eigenvalues l of 1/2 log(2 pi (l + h^2)) + l / (2 (l + h^2)); h = n^(-1/5) in 1-D, n^(-1/6) in 2-D.
    """
    def cross_entropy(eigenvalues: list[float], h: float) -> float:
        return sum(0.5 * math.log(2 * math.pi * (v + h * h)) + v / (2 * (v + h * h)) for v in eigenvalues)

    smoothed = 2 * cross_entropy([1.0], n ** -0.2) - cross_entropy([1 - rho, 1 + rho], n ** (-1 / 6))
    return smoothed - (-0.5 * math.log1p(-rho**2))


def test_kde_converges_on_a_bivariate_gaussian():
    # Over 60 seeds at n = 2000 (rho 0.6): mean - I = -0.0090 +- 0.0021 (scott) and -0.0097 +- 0.0021 (cv),
    # sd 0.0165; at n = 250 (200 seeds): -0.026 +- 0.003, sd 0.038. The smoothing bias derived above is
    # -0.0072 at n = 2000 and -0.0220 at n = 250; what is left (-0.002, -0.004) is the leave-one-out
    # estimator's own O(1/(n h^d)) term, allowed for by RESIDUAL_ALLOWANCE.
    residual_allowance = 0.005
    small = np.array([kde.kde_mi(*bivariate_gaussian(250, s))[0] for s in range(16)])
    large = np.array([kde.kde_mi(*bivariate_gaussian(2000, 100 + s))[0] for s in range(8)])
    assert np.mean((large - GAUSSIAN_MI) ** 2) < np.mean((small - GAUSSIAN_MI) ** 2)
    expected = GAUSSIAN_MI + gaussian_smoothing_bias(2000, RHO)
    stderr = large.std(ddof=1) / math.sqrt(len(large))
    assert abs(large.mean() - expected) < K_SE * stderr + residual_allowance


def test_kde_cross_validation_keeps_scotts_bandwidth_near_on_a_gaussian():
    value, diagnostics = kde.kde_mi(*bivariate_gaussian(2000, 9), bandwidth="cv")
    assert set(diagnostics["scott_multiples"].values()) <= {2**-0.5, 1.0, 2**0.5}
    # one fit: sd 0.0165 (60 seeds), bias as in the test above
    assert abs(value - GAUSSIAN_MI - gaussian_smoothing_bias(2000, RHO)) < K_SE * 0.0165 + 0.005


# ---------------------------------------------------------------- gmm


def test_mixture_mi_of_the_true_mixture_is_the_tasks_mi():
    rho = 0.9
    arms = np.array([[[1.0, -rho], [-rho, 1.0]], [[1.0, rho], [rho, 1.0]]])
    mixture = Mixture(np.array([0.5, 0.5]), np.zeros((2, 2)), arms)
    value, stderr = mixture_mi(mixture, 1, 200_000, np.random.default_rng(10))
    truth = task("mixture_x", correlation=rho).ground_truth()
    assert abs(value - truth.value) < K_SE * math.hypot(stderr, truth.stderr)
    uneven = Mixture(np.array([0.3, 0.7]), np.array([[0.0, 1.0], [2.0, -1.0]]),
                     np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.25, 0.0], [0.0, 1.0]]]))
    points = np.array([[0.3], [-2.0], [2.5]])
    y = points[:, 0]
    expected = np.log(0.3 * stats.norm.pdf(y, 1.0, math.sqrt(2.0)) + 0.7 * stats.norm.pdf(y, -1.0))
    np.testing.assert_allclose(uneven.marginal(slice(1, 2)).log_density(points), expected, rtol=1e-12)


def test_gmm_is_exact_on_a_gaussian():
    x, y = bivariate_gaussian(5000, 11)
    value, diagnostics = gmm_mi(x, y, seed=0)
    assert diagnostics["components"] == 1 and diagnostics["converged"]
    # One component is the Gaussian of the sample covariance (plus reg_covar = 1e-6): its MI is known exactly,
    # so only the Monte-Carlo error separates them ...
    r = np.corrcoef(x[:, 0], y[:, 0])[0, 1] / (1 + 1e-6)
    assert abs(value + 0.5 * math.log1p(-r**2)) < K_SE * diagnostics["mc_stderr"]
    # ... and from the truth, the fit's sampling error too: sd rho / sqrt(n) (the delta method, as for CCA).
    assert abs(value - GAUSSIAN_MI) < K_SE * math.hypot(RHO / math.sqrt(5000), diagnostics["mc_stderr"])


def test_gmm_fits_the_two_arms_of_a_mixture():
    # Over 24 seeds at n = 5000: mean - I = +0.0069 +- 0.0016, sd 0.0078; BIC chose 3 components 21 times, 2 three.
    t = task("mixture_x")
    x, y = t.sample(5000, np.random.default_rng(12))
    value, diagnostics = gmm_mi(x, y, seed=1)
    assert diagnostics["components"] >= 2
    assert abs(value - t.ground_truth().value) < K_SE * 0.0078 + 0.0069


def test_both_estimators_are_invariant_under_affine_maps_of_each_column():
    x, y = bivariate_gaussian(300, 17)
    for fit in (lambda a, b: kde.kde_mi(a, b, "cv")[0], lambda a, b: gmm_mi(a, b, mc_samples=2000)[0]):
        assert fit(100.0 * x - 3.0, 0.01 * y + 7.0) == pytest.approx(fit(x, y), abs=1e-9)


def test_gmm_flags_a_mixture_size_at_max_components():
    rng = np.random.default_rng(18)
    centres = 4.0 * rng.integers(-1, 2, (2000, 1))  # three clusters on the diagonal need three components
    x, y = centres + rng.standard_normal((2000, 1)), centres + rng.standard_normal((2000, 1))
    capped = estimator("gmm", max_components=2, interval_resamples=0).fit_estimate(x, y, Budget(), "cpu", 0)
    assert capped.diagnostics["components"] == 2 and "components_at_max" in capped.flags
    x, y = bivariate_gaussian(2000, 19)
    assert estimator("gmm", max_components=2, interval_resamples=0).fit_estimate(x, y, Budget(), "cpu", 0).flags == {}


@pytest.mark.parametrize("name, params", [("kde", {"bandwidth": "cv"}), ("gmm", {"mc_samples": 5000})])
def test_intervals_exist_contain_the_estimate_and_are_reproducible(name, params):
    x, y = bivariate_gaussian(400, 13)
    first, again, other = (estimator(name, interval_resamples=5, **params).fit_estimate(x, y, Budget(), "cpu", seed)
                           for seed in (0, 0, 1))
    low, high = first.interval
    assert low <= first.value <= high and high - low > 0
    assert (first.value, first.interval) == (again.value, again.interval)
    assert other.interval != first.interval
    assert estimator(name, interval_resamples=0, **params).fit_estimate(x, y, Budget(), "cpu", 0).interval is None


def test_gmm_interval_holds_the_fit_error_beyond_the_monte_carlo_error():
    x, y = bivariate_gaussian(2000, 14)
    estimate = estimator("gmm", interval_resamples=10).fit_estimate(x, y, Budget(), "cpu", 0)
    # the fit's own sd, rho / sqrt(n) = 0.013, is about 5x the Monte-Carlo error at 50 000 draws
    assert estimate.diagnostics["interval_se"] > 2 * estimate.diagnostics["mc_stderr"]


def test_bad_estimator_parameters_and_samples_are_refused():
    for name, params in [("kde", {"bandwidth": "silverman"}), ("kde", {"interval_resamples": 1}),
                         ("gmm", {"max_components": 0}), ("gmm", {"mc_samples": 10})]:
        with pytest.raises(ValidationError):
            estimator(name, **params)
    x, y = bivariate_gaussian(kde.MAX_PAIRS + 1, 15)
    with pytest.raises(InvalidSamples, match="at most 20000"):
        estimator("kde").fit_estimate(x, y, Budget(), "cpu", 0)
    x, y = bivariate_gaussian(10, 16)
    with pytest.raises(InvalidSamples, match="at least 16"):
        estimator("gmm").fit_estimate(x, y, Budget(), "cpu", 0)
    for fit in (kde.kde_mi, gmm_mi):
        with pytest.raises(UserError, match="constant"):
            fit(np.ones((100, 1)), np.arange(100.0)[:, None])
    with pytest.raises(InvalidSamples, match="valid rules: scott, cv"):
        kde.kde_mi(x, y, bandwidth="silverman")
