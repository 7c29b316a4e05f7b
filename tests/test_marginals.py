"""Marginal Gaussianisation: a monotone per-dimension map fitted on training rows only, so MI is kept."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtri

from harness import registry
from harness.api import Budget
from harness.errors import UserError
from plugins.estimators.marginals import gaussianize

N, FIT = 4000, 2000


@pytest.fixture(scope="module")
def heavy():
    rng = np.random.default_rng(0)
    return stats.t.rvs(df=1, size=(N, 3), random_state=rng)  # Cauchy margins: no mean, no variance


def test_training_rows_get_the_normal_scores_of_their_ranks(heavy):
    z = gaussianize(heavy, FIT)
    ranks = stats.rankdata(heavy[:FIT], axis=0)
    np.testing.assert_allclose(z[:FIT], ndtri((ranks - 0.5) / FIT), atol=1e-12)
    # N(0, 1) margins: the mean of 2000 scores is within 4 sd (1 / sqrt(2000)) of 0; the sd exact up to rank effects
    assert np.all(np.abs(z[:FIT].mean(0)) < 4 / np.sqrt(FIT))
    assert np.all(np.abs(z[:FIT].std(0) - 1) < 0.02)


def test_the_map_is_increasing_and_fitted_on_training_rows_only(heavy):
    z = gaussianize(heavy, FIT)
    for j in range(heavy.shape[1]):
        order = np.argsort(heavy[:, j])
        assert np.all(np.diff(z[order, j]) >= 0)  # monotone on all rows (flat only beyond the training range)
        inside = (heavy[:, j] > heavy[:FIT, j].min()) & (heavy[:, j] < heavy[:FIT, j].max())
        strictly = np.diff(z[order, j][inside[order]])
        assert np.all(strictly > 0)
    moved = heavy.copy()
    moved[FIT:] = moved[FIT:] * 100 + 7  # held-out rows never shape the map
    np.testing.assert_array_equal(gaussianize(moved, FIT)[:FIT], z[:FIT])
    far = gaussianize(np.concatenate([heavy[:FIT], [[1e9] * 3, [-1e9] * 3]]), FIT)[-2:]
    np.testing.assert_allclose(far, [[ndtri(1 - 0.5 / FIT)] * 3, [ndtri(0.5 / FIT)] * 3])


def test_tied_values_share_one_rank():
    a = np.array([[0.0], [1.0], [1.0], [2.0]])
    z = gaussianize(a, 4)
    np.testing.assert_allclose(z[:, 0], ndtri(np.array([0.5, 2.0, 2.0, 3.5]) / 4))


def test_rejects_an_empty_fit():
    with pytest.raises(ValueError, match="rows"):
        gaussianize(np.zeros((4, 1)), 0)


def fit(x, y, marginals, name="infonce", steps=300):
    estimator = registry.get("estimator", name).instantiate(
        {"hidden": 32, "embed_dim": 16, "lr": 2e-3, "marginals": marginals})
    return estimator.fit_estimate(x, y, Budget(steps=steps, batch_size=128), "cpu", 0).value


def test_a_monotone_distortion_of_each_coordinate_does_not_change_the_estimate():
    x, y = registry.get("task", "gaussian").instantiate({"dim": 2, "mi": 0.5}).sample(N, np.random.default_rng(1))
    half = N // 2
    # Ranks are invariant under increasing maps: the training rows are the same bits, and each held-out
    # row stays between the scores of the same two neighbouring training values (1 / 2000 of the CDF apart).
    assert np.array_equal(gaussianize(x ** 3, half)[:half], gaussianize(x, half)[:half])
    grid = np.sort(gaussianize(x, half)[:half], axis=0)
    moved, kept = gaussianize(x ** 3, half)[half:], gaussianize(x, half)[half:]
    for j in range(2):
        cell = np.searchsorted(grid[:, j], kept[:, j], side="left")
        assert np.array_equal(cell, np.searchsorted(grid[:, j], moved[:, j], side="left"))
    # The estimate moves by far less than its own sd (about 0.02): measured 2e-5.
    assert abs(fit(x ** 3, np.sinh(2 * y), "gaussianize") - fit(x, y, "gaussianize")) < 2e-3


def test_gaussian_mi_is_kept_and_heavy_tails_are_fixed():
    task = registry.get("task", "gaussian").instantiate({"dim": 2, "mi": 0.5})
    x, y = task.sample(N, np.random.default_rng(2))
    raw, mapped = fit(x, y, "raw"), fit(x, y, "gaussianize")
    # two 300-step critics on the same 2000 held-out rows: sd of each about 0.02, training gaps within 0.06
    assert abs(raw - mapped) < 0.1, (raw, mapped)
    assert mapped > task.ground_truth("mi").value - 0.12
    t = registry.get("task", "student_t").instantiate({"dim_x": 2, "dim_y": 2, "dof": 1.0, "pairs": 0})
    x, y = t.sample(N, np.random.default_rng(3))
    x, y = ((a - a.mean(0)) / a.std(0) for a in (x, y))  # the bmi_core preprocessing
    truth = t.ground_truth("mi").value  # 0.43 nats, all of it in the shared scale
    # measured on this task: about 0.0 raw (most points squeezed into a tiny core), 0.39 gaussianized
    assert fit(x, y, "gaussianize") > truth - 0.12 > fit(x, y, "raw") + 0.1


def test_two_sample_divergence_tasks_refuse_marginal_maps():
    estimator = registry.get("estimator", "fgan").instantiate({"divergence": "kl", "marginals": "gaussianize"})
    p = np.random.default_rng(0).normal(size=(600, 2))
    with pytest.raises(UserError, match="MI tasks"):
        estimator.fit_divergence(p, p + 1, Budget(steps=5, batch_size=32), "cpu", 0)
