"""Claims every registered task must satisfy, parametrized over the registry (new tasks are covered)."""

import math

import numpy as np
import pytest

from harness import registry
from harness.errors import UserError

K_SIGMA = 4.5
TASKS = sorted(registry.specs("task"))


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = registry.get("task", name).instantiate()
        return cache[name]

    return get


@pytest.mark.parametrize("name", TASKS)
def test_samples_have_the_declared_shapes(built, name):
    task = built(name)
    a, b = task.sample(64, np.random.default_rng(0))
    assert a.dtype in (np.float32, np.float64) and b.dtype in (np.float32, np.float64)
    if task.measures == "mi":
        assert a.shape == (64, task.dim_x) and b.shape == (64, task.dim_y)
    else:
        assert a.shape == (64, task.dim_x) and b.shape == (64, task.dim_x)


@pytest.mark.parametrize("name", TASKS)
def test_sampling_is_reproducible_from_the_seed_alone(built, name):
    task = built(name)
    first, again = task.sample(50, np.random.default_rng(7)), task.sample(50, np.random.default_rng(7))
    other = task.sample(50, np.random.default_rng(8))
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", TASKS)
def test_ground_truth_is_finite_and_monte_carlo_ones_are_precise(built, name):
    task = built(name)
    truth = task.ground_truth("mi" if task.measures == "mi" else "kl")
    assert math.isfinite(truth.value) and truth.value >= 0
    assert truth.stderr < 0.01


@pytest.mark.parametrize("name", [n for n in TASKS if registry.get("task", n).instantiate().measures == "mi"])
def test_mean_log_density_ratio_under_the_joint_is_the_mi(built, name):
    task = built(name)
    log_ratio = task.log_density_ratio(*task.sample(20_000, np.random.default_rng(11)))
    truth = task.ground_truth()
    stderr = math.hypot(log_ratio.std(ddof=1) / math.sqrt(len(log_ratio)), truth.stderr)
    assert abs(log_ratio.mean() - truth.value) < K_SIGMA * stderr


@pytest.mark.parametrize("name", [n for n in TASKS if registry.get("task", n).instantiate().measures == "divergence"])
def test_mean_log_density_ratio_under_p_is_the_kl(built, name):
    task = built(name)
    p, _ = task.sample(20_000, np.random.default_rng(12))
    log_ratio = task.log_density_ratio(p)
    truth = task.ground_truth("kl")
    stderr = math.hypot(log_ratio.std(ddof=1) / math.sqrt(len(log_ratio)), truth.stderr)
    assert abs(log_ratio.mean() - truth.value) < K_SIGMA * stderr


@pytest.mark.parametrize("name", ["gaussian", "mixture_x", "half_cube"])
def test_kl_information_is_the_mutual_information(built, name):
    task = built(name)
    assert task.ground_truth("kl") == task.ground_truth("mi")


@pytest.mark.parametrize("name", ["gaussian", "gaussian_pair"])
def test_unknown_target_is_a_user_error_listing_valid_names(built, name):
    with pytest.raises(UserError, match="kl.*tv|tv.*kl"):
        built(name).ground_truth("kullback")


def test_divergence_task_refuses_the_mi_target(built):
    with pytest.raises(UserError, match="divergence task"):
        built("gaussian_pair").ground_truth("mi")


def test_monte_carlo_ground_truth_is_computed_once_per_parameters():
    from plugins.tasks import base

    first = registry.get("task", "mixture_x").instantiate({"correlation": 0.7})
    value = first.ground_truth()
    key = ("mixture_x", first.params_key, "mi")
    assert base._GROUND_TRUTHS[key] is value
    again = registry.get("task", "mixture_x").instantiate({"correlation": 0.7})
    assert again.ground_truth() is value
