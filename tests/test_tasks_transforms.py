"""Transforms: invertible on their sampled range, MI-preserving, composable on any base task."""

import numpy as np
import pytest

from harness import registry
from harness.errors import UserError
from plugins.tasks import diffeomorphisms as d
from plugins.tasks.params import TRANSFORMS

MAPS = [d.HalfCube(), d.Cube(), d.Asinh(), d.NormalCDF(), d.WIGGLY_X, d.WIGGLY_Y, d.Spiral(speed=0.5),
        d.Spiral(speed=3.0), d.SwissRoll(), d.BIMODAL_X, d.BIMODAL_Y]


def task(name, **params):
    return registry.get("task", name).instantiate(params)


@pytest.mark.parametrize("transform", MAPS, ids=lambda m: f"{m.name}")
def test_inverse_undoes_the_map_on_gaussian_samples_and_their_tails(transform):
    v = np.random.default_rng(0).standard_normal((5_000, 3))
    # Phi squashes R into (0, 1): in float64 its upper tail keeps ~1e-10 of precision at 5 sigma
    # (beyond what 1e6 Gaussian draws reach), none at 8.5; the unbounded maps are tested further out
    tail = 5.0 if isinstance(transform, d.NormalCDF | d.SwissRoll) else 7.5
    v[:4, 0] = [-tail, -4.0, 4.0, tail]
    w = transform.forward(v)
    assert w.shape == (5_000, transform.out_dim(3)) and np.all(np.isfinite(w))
    np.testing.assert_allclose(transform.inverse(w), v, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("transform", [d.HalfCube(), d.Cube(), d.Asinh(), d.NormalCDF(), d.WIGGLY_X, d.WIGGLY_Y,
                                       d.BIMODAL_X, d.BIMODAL_Y], ids=lambda m: m.name)
def test_coordinatewise_maps_are_strictly_increasing(transform):
    grid = np.linspace(-6, 6, 4001)[:, None]
    assert np.all(np.diff(transform.forward(grid)[:, 0]) > 0)


def test_bimodal_marginal_has_two_modes_at_the_mixture_means():
    w = d.BIMODAL_X.forward(np.random.default_rng(1).standard_normal((200_000, 1)))[:, 0]
    counts, edges = np.histogram(w, bins=np.arange(-4.0, 9.5, 0.5))
    centres = (edges[1:] + edges[:-1]) / 2
    assert abs(centres[np.argmax(counts)] - 5.0) < 0.5
    assert counts[np.argmin(np.abs(centres - 0.0))] > 2 * counts[np.argmin(np.abs(centres - 2.5))]
    assert np.mean(w < 2.5) == pytest.approx(0.3, abs=0.01)


def test_spiral_preserves_the_norm_and_swissroll_the_distance_to_the_axis():
    v = np.random.default_rng(2).standard_normal((1000, 4))
    np.testing.assert_allclose(np.linalg.norm(d.Spiral(2.0).forward(v), axis=1), np.linalg.norm(v, axis=1))
    rolled = d.SwissRoll().forward(v[:, :2])
    assert rolled.shape == (1000, 3)
    radius = np.hypot(rolled[:, 0], rolled[:, 1])
    assert np.all((radius > 1.5 * np.pi) & (radius < 4.5 * np.pi))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("apply_to", ["x", "y", "both"])
def test_transformed_task_keeps_the_base_ground_truth_and_log_ratio(name, apply_to):
    base = {"name": "gaussian", "params": {"dim": 2, "mi": 1.5}}
    t = task(name, base=base, apply_to=apply_to)
    original = task("gaussian", dim=2, mi=1.5)
    assert t.ground_truth() == original.ground_truth()
    x0, y0 = original.sample(300, np.random.default_rng(5))
    x1, y1 = t.sample(300, np.random.default_rng(5))
    assert (x1.shape[1], y1.shape[1]) == (t.dim_x, t.dim_y)
    assert np.array_equal(x0, x1) == (apply_to == "y") and np.array_equal(y0, y1) == (apply_to == "x")
    np.testing.assert_allclose(t.log_density_ratio(x1, y1), original.log_density_ratio(x0, y0), atol=1e-6)


def test_transforms_nest_and_compose_with_any_registered_task():
    nested = task("half_cube", base={"name": "asinh", "params": {
        "base": {"name": "student_t", "params": {"dof": 4.0}}, "apply_to": "x"}}, apply_to="y")
    student = task("student_t", dof=4.0)
    assert nested.ground_truth() == student.ground_truth()
    x, y = nested.sample(100, np.random.default_rng(0))
    xs, ys = student.sample(100, np.random.default_rng(0))
    np.testing.assert_allclose(x, np.arcsinh(xs))
    np.testing.assert_allclose(y, ys * np.sqrt(np.abs(ys)))


def test_swissroll_adds_one_dimension_to_the_side_it_rolls():
    t = task("swissroll", base={"name": "gaussian", "params": {"dim": 2, "mi": 1.0}})
    assert (t.dim_x, t.dim_y) == (3, 2)


def test_bad_bases_are_user_errors_that_say_what_is_valid():
    with pytest.raises(UserError, match="unknown task 'gausian'.*gaussian"):
        task("asinh", base={"name": "gausian"})
    with pytest.raises(UserError, match="base must be"):
        task("asinh", base={"task": "gaussian"})
    with pytest.raises(UserError, match="measures 'mi'"):
        task("asinh", base={"name": "gaussian_pair"})
    with pytest.raises(UserError, match="at least 2 dimensions"):
        task("spiral", base={"name": "gaussian", "params": {"dim": 1}})
