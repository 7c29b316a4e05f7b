"""Sixteen small critics (Beyond-Normal style) trained one by one (each a group of one) vs as one grouped model.

Compare the two rows of the "G = 16 small critics" group: the ratio is the grouping speed-up.
"""

import numpy as np
import pytest
import torch

from harness.api import Budget
from harness.training import train_critics
from plugins.estimators.critics import SeparableCritic, stack_critics
from plugins.estimators.objectives import InfoNCE

G, STEPS, BATCH, HIDDEN = 16, 30, 64, 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2000, 2)).astype(np.float32) for _ in range(G)]
    return xs, [x + 0.5 * rng.standard_normal(x.shape).astype(np.float32) for x in xs]


def critics():
    built = []
    for seed in range(G):
        torch.manual_seed(seed)
        built.append(SeparableCritic(2, 2, HIDDEN, 2, HIDDEN // 2, "relu"))
    return built


def alone(critic, x, y, budget, seed):
    """One critic as a cell alone trains: a group of one."""
    (result,) = train_critics(stack_critics([critic]), [InfoNCE()], [x], [y], budget, "cpu", [seed], 2e-3)
    return result


def test_one_by_one(benchmark, data):
    benchmark.group = f"G = {G} small critics, {STEPS} steps"
    xs, ys = data
    budget = Budget(steps=STEPS, batch_size=BATCH)
    results = benchmark(lambda: [alone(c, x, y, budget, g)
                                 for g, (c, x, y) in enumerate(zip(critics(), xs, ys, strict=True))])
    assert all(np.isfinite(r.value) for r in results)


def test_grouped(benchmark, data):
    benchmark.group = f"G = {G} small critics, {STEPS} steps"
    xs, ys = data
    budget = Budget(steps=STEPS, batch_size=BATCH)
    objective = InfoNCE()
    results = benchmark(lambda: train_critics(stack_critics(critics()), [objective] * G, xs, ys, budget, "cpu",
                                              list(range(G)), 2e-3))
    assert all(np.isfinite(r.value) for r in results)
