"""Claims about the trained estimators on Gaussians of known MI, through the shared loop.

Tolerances: at the optimal critic the NWJ/DV partition term has variance >= (e^I - 1)/B per
batch (Song & Ermon 2020, Thm 2), so an estimate averaged over K held-out batches has standard
deviation about sqrt((e^I - 1) / (B K)); beyond that a trained critic is only near-optimal,
which lowers a lower bound by a training gap we allow explicitly (TRAINING_GAP).
"""

import math

import numpy as np
import pytest

from harness import registry
from harness.api import Budget, UsesEntropy

MI, DIM, N, STEPS, BATCH = 0.5, 2, 8192, 600, 128
TRAINING_GAP = 0.12  # measured gap of a 600-step critic at 0.5 nats, 2-D: about 0.03-0.06
# The protocol these tolerances were derived for: raw marginals, half the samples held out, the last critic
# valued in training batches.
FAST = {"hidden": 64, "embed_dim": 16, "lr": 2e-3, "layers": 2, "activation": "relu", "marginals": "raw",
        "heldout": 0.5, "checkpoint_every": 0}


@pytest.fixture(scope="module")
def data():
    task = registry.get("task", "gaussian").instantiate({"dim": DIM, "mi": MI})
    x, y = task.sample(N, np.random.default_rng(11))
    return x, y, task.ground_truth("mi").value


def fit(name, x, y, seed=0, steps=STEPS, batch=BATCH, **params):
    estimator = registry.get("estimator", name).instantiate({**FAST, **params})
    return estimator.fit_estimate(x, y, Budget(steps=steps, batch_size=batch), "cpu", seed)


def heldout_sd(mi: float) -> float:
    batches = (N // 2) // BATCH
    return math.sqrt((math.exp(mi) - 1) / (BATCH * batches))


def test_infonce_never_exceeds_log_batch():
    task = registry.get("task", "gaussian").instantiate({"dim": 5, "mi": 6.0})
    x, y = task.sample(4096, np.random.default_rng(0))
    estimate = fit("infonce", x, y, steps=300, batch=16)
    cap = math.log(16)
    assert estimate.value <= cap + 1e-6
    assert max(v for _, v in estimate.trajectory) <= cap + 1e-6
    assert estimate.value > 0.6 * cap  # it does learn: saturates towards log B at 6 nats


@pytest.mark.parametrize("name", ["nwj", "mine"])
def test_nwj_and_mine_recover_gaussian_mi(data, name):
    x, y, truth = data
    values = np.array([fit(name, x, y, seed=s).value for s in (0, 1)])
    sd = heldout_sd(truth)
    # the held-out halves are the same data for both seeds, so do not divide sd by sqrt(seeds)
    assert values.mean() <= truth + 4 * sd + 0.02, values
    assert values.mean() >= truth - 4 * sd - TRAINING_GAP, values


def test_infonce_is_close_below_log_b(data):
    x, y, truth = data
    value = fit("infonce", x, y).value
    assert truth - TRAINING_GAP - 4 * heldout_sd(truth) <= value <= truth + 4 * heldout_sd(truth)


def test_same_seed_same_estimate(data):
    x, y, _ = data
    assert fit("nwj", x, y, seed=3, steps=50).value == fit("nwj", x, y, seed=3, steps=50).value
    assert fit("nwj", x, y, seed=3, steps=50).value != fit("nwj", x, y, seed=4, steps=50).value


def test_streaming_protocol_when_data_covers_every_step():
    task = registry.get("task", "gaussian").instantiate({"dim": 2, "mi": 1.0})
    x, y = task.sample(100 * 64, np.random.default_rng(0))
    estimate = fit("infonce", x, y, steps=100, batch=64)
    assert estimate.diagnostics["protocol"] == "stream"
    assert estimate.trajectory[-1][0] == 100


@pytest.mark.parametrize("name", sorted(registry.specs("estimator")))
def test_every_estimator_runs_and_reports_a_finite_value(name):
    spec = registry.get("estimator", name)
    assert spec.summary and spec.cite
    task = registry.get("task", "gaussian").instantiate({"dim": 2, "mi": 1.0})
    x, y = task.sample(1024, np.random.default_rng(0))
    estimator = spec.instantiate({})
    if isinstance(estimator, UsesEntropy) and estimator.needs_entropy:  # as a cell on this task would
        estimator = estimator.with_entropy_y(task.entropy("y"))
    estimate = estimator.fit_estimate(x, y, Budget(steps=20, batch_size=64), "cpu", 0)
    assert math.isfinite(estimate.value)
    assert isinstance(estimator.target, str)
    assert math.isfinite(task.ground_truth(estimator.target).value)


@pytest.mark.parametrize("critic", ["separable", "concat", "bilinear"])
def test_every_critic_learns(data, critic):
    x, y, truth = data
    assert fit("nwj", x, y, steps=300, critic=critic).value > truth - 0.25
