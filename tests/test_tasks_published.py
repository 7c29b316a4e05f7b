"""The published Beyond-Normal / mixtures-paper tasks added to the registry (waves, power, rotate,
spiral_beyond_normal, multinormal_lvm, student_dense): each ground truth against a computation that
does not go through the task's own code, and each PMI profile's mean against the ground truth."""

import math

import numpy as np
import pytest
from scipy import special, stats
from scipy.linalg import expm

import harness
from harness import registry
from harness.errors import UserError
from plugins.tasks import diffeomorphisms as d

K_SIGMA = 4.0
BASE_3X3 = {"name": "multinormal_sparse", "params": {"dim_x": 3, "dim_y": 3}}  # the published 2-pair 3x3
MI_2PAIR = -math.log(1 - 0.8**2)  # two pairs of correlation s^2 / (1 + s^2) = 0.8: 1.0217 nats


def task(name, **params):
    return registry.get("task", name).instantiate(params)


def assert_pmi_mean_is_the_mi(name, n=20_000, seed=3, **params):
    profile = harness.pmi_profile(name, n=n, seed=seed, **params)
    truth = task(name, **params).ground_truth()
    stderr = math.hypot(profile.std(ddof=1) / math.sqrt(n), truth.stderr)
    assert abs(profile.mean() - truth.value) < K_SIGMA * stderr, (profile.mean(), truth)


def gaussian_mi(covariance, dim_x):
    logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return 0.5 * (logdet(covariance[:dim_x, :dim_x]) + logdet(covariance[dim_x:, dim_x:]) - logdet(covariance))


def so_generator(n, i, j):
    g = np.zeros((n, n))
    g[i, j], g[j, i] = -1.0, 1.0
    return g


# -- waves (mixtures paper, v2 benchmark: 12 components, amplitude 5, frequency 3) -------------------

def waves_mi_by_quadrature(components=12, step=0.02):
    """I(X_0; Y) of the unsheared mixture on a grid (X_1 is independent noise and the shear is injective)."""
    k = np.arange(components)
    x = np.arange(-3.0, 1.5 * (components - 1) + 3.0, step)
    y = np.arange(-3.0, 1.5 * 3 + 3.0, step)
    log_px_k = stats.norm.logpdf(x[:, None], 1.5 * k, math.sqrt(0.1))  # (nx, K)
    log_py_k = stats.norm.logpdf(y[:, None], 1.5 * (k % 4), math.sqrt(0.1))  # (ny, K)
    log_joint = special.logsumexp(log_px_k[:, None, :] + log_py_k[None, :, :], axis=2) - math.log(components)
    log_px = special.logsumexp(log_px_k, axis=1) - math.log(components)
    log_py = special.logsumexp(log_py_k, axis=1) - math.log(components)
    pmi = log_joint - log_px[:, None] - log_py[None, :]
    return float(np.sum(np.exp(log_joint) * pmi) * step * step)


def test_waves_monte_carlo_ground_truth_matches_2d_quadrature():
    truth = task("waves").ground_truth()
    quadrature = waves_mi_by_quadrature()
    assert truth.stderr < 0.002
    assert abs(truth.value - quadrature) < K_SIGMA * truth.stderr, (truth, quadrature)
    assert 1.2 < quadrature < math.log(4)  # Y says k mod 4, nearly exactly


def test_waves_map_is_the_published_shear_and_inverts():
    waves = d.Waves(amplitude=5.0, frequency=3.0)
    point = np.array([[0.0, math.pi / 6]])  # x0 + 5 sin(pi / 2) = 5 -> 0.1 * 5 - 0.8
    np.testing.assert_allclose(waves.forward(point), [[-0.3, math.pi / 12]], atol=1e-12)
    v = np.random.default_rng(0).normal(scale=[6.0, 1.0], size=(2000, 2))
    np.testing.assert_allclose(waves.inverse(waves.forward(v)), v, atol=1e-9)
    x, y = task("waves").sample(5000, np.random.default_rng(1))
    assert x.shape == (5000, 2) and y.shape == (5000, 1)
    assert np.std(x[:, 1]) == pytest.approx(0.5, rel=0.05)  # X_1 ~ N(0, 1), halved


def test_waves_pmi_mean_is_its_mi():
    assert_pmi_mean_is_the_mi("waves")


# -- power (Beyond Normal's tails figure: power(multinormal_2pair(3, 3), alpha), alpha in [1, 5]) ----

@pytest.mark.parametrize("alpha", [1.0, 3.0 + 2.0 / 3.0, 5.0])
def test_power_keeps_the_closed_form_mi_and_its_pmi_mean(alpha):
    assert task("power", base=BASE_3X3, alpha=alpha).ground_truth().value == pytest.approx(MI_2PAIR, abs=1e-12)
    assert_pmi_mean_is_the_mi("power", base=BASE_3X3, alpha=alpha)


def test_power_one_and_a_half_is_half_cube_and_every_power_inverts():
    v = np.random.default_rng(2).standard_normal((500, 3))
    v[:4, 0] = [-7.5, -1e-3, 0.0, 7.5]
    np.testing.assert_allclose(d.Power(alpha=1.5).forward(v), d.HalfCube().forward(v), rtol=1e-12)
    for alpha in (0.5, 1.0, 2.0, 5.0):
        power = d.Power(alpha=alpha)
        assert np.all(np.diff(power.forward(np.linspace(-6, 6, 4001)[:, None])[:, 0]) > 0)
        np.testing.assert_allclose(power.inverse(power.forward(v)), v, rtol=1e-9, atol=1e-12)


# -- rotate (bmi.benchmark.tasks.transform_rotate_task) ---------------------------------------------

def published_rotations(dim_x, dim_y):
    rx = expm(2 * so_generator(dim_x, 0, 1) - so_generator(dim_x, 1, 2) - so_generator(dim_x, 0, 2))
    ry = expm(so_generator(dim_y, 0, 1) + 2 * so_generator(dim_y, 1, 2))
    return rx, ry


def test_rotate_is_the_published_rotation_and_its_pmi_is_the_rotated_gaussians():
    base, rotated = task("multinormal_sparse", dim_x=3, dim_y=4), task("rotate", base={
        "name": "multinormal_sparse", "params": {"dim_x": 3, "dim_y": 4}})
    rx, ry = published_rotations(3, 4)
    x0, y0 = base.sample(2000, np.random.default_rng(4))
    x, y = rotated.sample(2000, np.random.default_rng(4))
    np.testing.assert_allclose(x, x0 @ rx, atol=1e-12)
    np.testing.assert_allclose(y, y0 @ ry, atol=1e-12)
    # the rotated vector is Gaussian with covariance B^T S B, B = blockdiag(rx, ry): its PMI by scipy
    b = np.zeros((7, 7))
    b[:3, :3], b[3:, 3:] = rx, ry
    s = b.T @ base.covariance @ b
    logpdf = lambda z, c: stats.multivariate_normal(np.zeros(len(c)), c).logpdf(z)  # noqa: E731
    pmi = logpdf(np.hstack([x, y]), s) - logpdf(x, s[:3, :3]) - logpdf(y, s[3:, 3:])
    np.testing.assert_allclose(rotated.log_density_ratio(x, y), pmi, atol=1e-8)
    assert rotated.ground_truth().value == pytest.approx(gaussian_mi(s, 3), abs=1e-10)
    assert rotated.ground_truth().value == pytest.approx(MI_2PAIR, abs=1e-10)


def test_rotate_pmi_mean_is_its_mi_and_small_sides_are_refused():
    assert_pmi_mean_is_the_mi("rotate", base={"name": "student_t", "params": {"dim_x": 3, "dim_y": 3, "dof": 5.0}})
    with pytest.raises(UserError, match="at least 3 dimensions"):
        task("rotate", base=BASE_3X3 | {"params": {"dim_x": 2, "dim_y": 3}})
    assert task("rotate", base=BASE_3X3 | {"params": {"dim_x": 2, "dim_y": 3}}, apply_to="y").dim_x == 2


# -- spiral_beyond_normal (bmi.benchmark.tasks.transform_spiral_task, speed 1, normalised) -----------

@pytest.mark.parametrize("dims", [(3, 3), (5, 5), (2, 4)])
def test_spiral_beyond_normal_is_the_published_spiral(dims):
    dim_x, dim_y = dims
    base_ref = {"name": "multinormal_sparse", "params": {"dim_x": dim_x, "dim_y": dim_y}}
    spiral, base = task("spiral_beyond_normal", base=base_ref), task("multinormal_sparse", dim_x=dim_x, dim_y=dim_y)
    x0, y0 = base.sample(20, np.random.default_rng(5))
    x, y = spiral.sample(20, np.random.default_rng(5))
    for v, w, g, dim in ((x0, x, so_generator(dim_x, 0, 1), dim_x), (y0, y, so_generator(dim_y, 1, 2), dim_y)):
        expected = np.stack([expm(g * (1.0 / dim) * (row @ row)) @ row for row in v])
        np.testing.assert_allclose(w, expected, atol=1e-10)
    assert spiral.ground_truth().value == pytest.approx(MI_2PAIR, abs=1e-12)


def test_spiral_beyond_normal_pmi_mean_is_its_mi_and_needs_three_y_dimensions():
    assert_pmi_mean_is_the_mi("spiral_beyond_normal", base={"name": "normal_cdf", "params": {"base": BASE_3X3}})
    assert_pmi_mean_is_the_mi("spiral_beyond_normal", base=BASE_3X3, speed=3.0, normalise_speed=False)
    with pytest.raises(UserError, match="at least 3 dimensions"):
        task("spiral_beyond_normal", base={"name": "gaussian", "params": {"dim": 2}})


# -- multinormal_lvm (bmi.benchmark.tasks.task_multinormal_lvm; the sparsity figure) -----------------

def latent_mixing(dim_x, dim_y, pairs, alpha, strength, beta, epsilon, eta):
    """(X, Y) = A (U_all, U_X, U_Y, Z_1.., E_1.., F_1.., V.., W..), column by column from the description."""
    rows = dim_x + dim_y
    columns = []

    def latent(entries):
        column = np.zeros(rows)
        for index, weight in entries:
            column[index] = weight
        columns.append(column)

    latent([(i, alpha) for i in range(rows)])
    latent([(i, beta) for i in range(dim_x)])
    latent([(dim_x + j, beta) for j in range(dim_y)])
    for i in range(pairs):
        latent([(i, strength), (dim_x + i, strength)])
    for i in range(rows):
        latent([(i, epsilon)])
    for i in range(pairs, dim_x):
        latent([(i, eta)])
    for j in range(pairs, dim_y):
        latent([(dim_x + j, eta)])
    return np.stack(columns, axis=1)


LVM_CASES = [
    dict(dim_x=5, dim_y=5, pairs=2, alpha=0.5, strength=2.0, beta=0.0, epsilon=1.0, eta=2.0),
    dict(dim_x=3, dim_y=4, pairs=0, alpha=0.8, strength=0.0, beta=0.0, epsilon=1.0, eta=0.0),  # dense only
    dict(dim_x=4, dim_y=4, pairs=4, alpha=0.3, strength=1.2, beta=0.0, epsilon=1.0, eta=0.0),  # all pairs
    dict(dim_x=3, dim_y=2, pairs=1, alpha=0.4, strength=1.5, beta=0.7, epsilon=0.6, eta=0.9),
]


@pytest.mark.parametrize("case", LVM_CASES)
def test_lvm_mi_matches_the_latent_models_covariance(case):
    a = latent_mixing(**case)
    independent = gaussian_mi(a @ a.T, case["dim_x"])
    built = task("multinormal_lvm", **case)
    assert built.ground_truth().value == pytest.approx(independent, rel=1e-10, abs=1e-12)
    assert np.allclose(np.diag(built.covariance), 1.0)


def test_lvm_special_cases_are_the_sparse_and_dense_gaussians():
    sparse = task("multinormal_lvm", alpha=0.0).ground_truth().value
    assert sparse == pytest.approx(task("multinormal_sparse").ground_truth().value, abs=1e-12)
    dense = task("multinormal_lvm", dim_x=2, dim_y=3, pairs=0, alpha=1.5, strength=0.0, eta=0.0)
    expected = task("multinormal_dense", dim_x=2, dim_y=3, correlation=1.5**2 / (1.5**2 + 1))
    assert dense.ground_truth().value == pytest.approx(expected.ground_truth().value, abs=1e-12)


def test_lvm_pmi_mean_is_its_mi():
    assert_pmi_mean_is_the_mi("multinormal_lvm")


# -- student_dense (bmi.benchmark.tasks.task_student_dense) -----------------------------------------

@pytest.mark.parametrize("dim_x, dim_y, dof, correlation", [(2, 2, 3.0, 0.5), (1, 2, 5.0, 0.3)])
def test_student_dense_mi_matches_monte_carlo_with_scipy_densities(dim_x, dim_y, dof, correlation):
    d_all = dim_x + dim_y
    dispersion = np.full((d_all, d_all), correlation) + (1 - correlation) * np.eye(d_all)
    joint = stats.multivariate_t(np.zeros(d_all), dispersion, df=dof)
    z = joint.rvs(size=100_000, random_state=np.random.default_rng(6))
    x, y = z[:, :dim_x], z[:, dim_x:]
    side = lambda s: stats.multivariate_t(np.zeros(s.stop - s.start), dispersion[s, s], df=dof)  # noqa: E731
    pmi = joint.logpdf(z) - side(slice(0, dim_x)).logpdf(x) - side(slice(dim_x, d_all)).logpdf(y)
    exact = task("student_dense", dim_x=dim_x, dim_y=dim_y, dof=dof, correlation=correlation).ground_truth()
    assert abs(pmi.mean() - exact.value) < K_SIGMA * pmi.std(ddof=1) / math.sqrt(len(pmi)), (pmi.mean(), exact)


def test_student_dense_without_correlation_is_the_identity_student_and_pmi_mean_is_its_mi():
    identity = task("student_t", dim_x=2, dim_y=3, dof=2.0, pairs=0).ground_truth().value
    assert task("student_dense", dim_x=2, dim_y=3, dof=2.0, correlation=0.0).ground_truth().value == pytest.approx(
        identity, abs=1e-12)
    assert_pmi_mean_is_the_mi("student_dense")
    with pytest.raises(UserError, match="not positive definite"):
        task("student_dense", dim_x=2, dim_y=2, correlation=-0.5)


def test_added_tasks_are_registered_with_their_papers():
    for name in ("rotate", "spiral_beyond_normal", "multinormal_lvm", "student_dense", "power"):
        assert "2306.11078" in registry.specs("task")[name].cite
    assert "2310.10240" in registry.specs("task")["waves"].cite
