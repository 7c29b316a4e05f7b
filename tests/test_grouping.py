"""Grouped training: many critics as one batched model give each member the numbers it gets alone.

On CPU the numbers are the same bits, with either CPU matmul kernel (torch's batched matmuls or
oneDNN member by member): a cell fitted alone is a group of one through the same batched layers,
each layer's kernels round a member's numbers the same whatever stands beside it, and every
reduction runs per member. Elsewhere (a GPU, or a plain nn.Linear critic in a textbook loop,
whose kernels round differently) tolerance 1e-4: rounding differences of ~1e-7 per step grow
through 100 Adam steps to ~1e-6, while a genuine mix-up between members (wrong data stream,
seed, optimiser state or objective) moves values by 1e-2 or more.
"""

import numpy as np
import pytest
import torch

from harness import grouping, registry, training
from harness.api import Budget
from harness.cells import Cell, execute
from harness.executors import InlineExecutor
from harness.training import heldout_start, train_critics
from plugins.estimators import cpu_gemm
from plugins.estimators.critics import CRITICS, SeparableCritic, TwoSampleCritic, stack_critics
from plugins.estimators.objectives import TUBA, InfoNCE

SMALL = {"hidden": 16, "embed_dim": 8, "lr": 2e-3}
TOLERANCE = 1e-4
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=["torch", "onednn"])
def cpu_kernel(request, monkeypatch, choose_cpu_gemm):
    """Each CPU matmul kernel in turn, oneDNN for every layer (not only the large ones)."""
    monkeypatch.setattr(cpu_gemm, "MIN_WORK", 0)
    choose_cpu_gemm(request.param)
    return request.param


def gaussian(mi, dim=2, n=1000, seed=0):
    return registry.get("task", "gaussian").instantiate({"dim": dim, "mi": mi}).sample(n, np.random.default_rng(seed))


def members(names, n=1000, **params):
    out = []
    for i, name in enumerate(names):
        x, y = gaussian(0.5 + 0.25 * i, n=n, seed=i)
        out.append((registry.get("estimator", name).instantiate({**SMALL, **params}), x, y, 10 + i))
    return out


def assert_same(alone, grouped, exact=False):
    assert alone.diagnostics["protocol"] == grouped.diagnostics["protocol"]
    if exact:
        assert (alone.value, alone.trajectory) == (grouped.value, grouped.trajectory)
        return
    assert abs(alone.value - grouped.value) < TOLERANCE, (alone.value, grouped.value)
    assert [s for s, _ in alone.trajectory] == [s for s, _ in grouped.trajectory]
    drift = max(abs(a - g) for (_, a), (_, g) in zip(alone.trajectory, grouped.trajectory, strict=True))
    assert drift < TOLERANCE


@pytest.mark.parametrize("dim_y", [2, 3])  # dim_y = dim_x: g and h run as one group of 2G
@pytest.mark.parametrize("critic", ["separable", "concat", "bilinear"])
def test_stacked_critic_scores_equal_each_members_scores(critic, dim_y, cpu_kernel):
    built = []
    for seed in range(3):
        torch.manual_seed(seed)
        built.append(CRITICS[critic](3, dim_y, 16, 2, 8, "relu"))
    x, y = torch.randn(3, 10, 3), torch.randn(3, 10, dim_y)
    grouped = stack_critics(built)(x, y)
    plain = torch.stack([m(x[g], y[g]) for g, m in enumerate(built)])
    torch.testing.assert_close(grouped, plain, rtol=1e-5, atol=1e-6)  # nn.Linear's kernel may round differently
    alone = torch.cat([stack_critics([m])(x[g : g + 1], y[g : g + 1]) for g, m in enumerate(built)])
    assert torch.equal(grouped, alone)


@pytest.mark.parametrize("device", DEVICES)
def test_grouped_members_match_training_alone_across_objectives_seeds_and_tasks(device, cpu_kernel):
    # MINE twice: two members share one MINE instance, each with its own moving average.
    group = members(["infonce", "nwj", "mine", "mine", "smile", "tuba", "js", "nce"])
    budget = Budget(steps=100, batch_size=32)  # 1000 samples < 100 x 32: the held-out protocol
    grouped = group[0][0].fit_estimate_group(group, budget, device)
    for (estimator, x, y, seed), result in zip(group, grouped, strict=True):
        assert_same(estimator.fit_estimate(x, y, budget, device, seed), result, exact=device == "cpu")
    assert grouped[0].diagnostics["group_size"] == len(group)
    assert grouped[0].diagnostics["kernel_ms"] > 0 and grouped[0].diagnostics["peak_mem_mb"] > 0


@pytest.mark.parametrize("names", [["club", "club_sample", "l1out", "ba"], ["doe", "doe"], ["gm", "gm"],
                                   ["flo", "infonce", "flo"]])
def test_density_and_flo_members_match_training_alone(names, cpu_kernel):
    group = []
    for i, name in enumerate(names):
        x, y = gaussian(0.5 + 0.25 * i, seed=i)
        params = {"hidden": 16, "lr": 2e-3, "marginals": "raw"} | ({"entropy_y": 2.0} if name == "ba" else {})
        group.append((registry.get("estimator", name).instantiate(params), x, y, 10 + i))
    budget = Budget(steps=100, batch_size=32)
    grouped = group[0][0].fit_estimate_group(group, budget, "cpu")
    for (estimator, x, y, seed), result in zip(group, grouped, strict=True):
        alone = estimator.fit_estimate(x, y, budget, "cpu", seed)
        assert_same(alone, result, exact=True)
        assert (alone.interval, alone.criterion) == (result.interval, result.criterion)
        assert np.array_equal(alone.pmi[1], result.pmi[1])
    assert grouped[0].diagnostics["group_size"] == len(group)


@pytest.mark.parametrize("device", DEVICES)
def test_grouped_streaming_members_match_training_alone(device, cpu_kernel):
    group = members(["infonce", "mine", "nwj"], n=60 * 32, critic="concat")
    budget = Budget(steps=60, batch_size=32)
    grouped = group[0][0].fit_estimate_group(group, budget, device)
    for (estimator, x, y, seed), result in zip(group, grouped, strict=True):
        alone = estimator.fit_estimate(x, y, budget, device, seed)
        assert alone.diagnostics["protocol"] == "stream"
        assert_same(alone, result, exact=device == "cpu")


def test_grouped_divergence_members_match_training_alone(cpu_kernel):
    rng = np.random.default_rng(0)
    p, q = rng.normal(0.5, 1.0, (600, 2)), rng.normal(0.0, 1.0, (600, 2))
    estimator = registry.get("estimator", "fgan").instantiate({**SMALL, "divergence": "kl"})
    group = [(estimator, p, q, 1), (estimator, p + 0.1, q, 2)]
    budget = Budget(steps=50, batch_size=32)
    grouped = estimator.fit_divergence_group(group, budget, "cpu")
    for (_, a, b, seed), result in zip(group, grouped, strict=True):
        assert_same(estimator.fit_divergence(a, b, budget, "cpu", seed), result, exact=True)


def test_one_adam_over_stacked_weights_is_independent_adams():
    torch.manual_seed(0)
    weights = [torch.randn(5, 4) for _ in range(3)]
    grads = [[torch.randn(5, 4) * (g + 1) for g in range(3)] for _ in range(20)]
    for options in ({}, {"fused": True}):
        alone = [torch.nn.Parameter(w.clone()) for w in weights]
        optimisers = [torch.optim.Adam([w], lr=0.01, **options) for w in alone]
        stacked = torch.nn.Parameter(torch.stack(weights))
        joint = torch.optim.Adam([stacked], lr=0.01, **options)
        for step_grads in grads:
            for w, opt, grad in zip(alone, optimisers, step_grads, strict=True):
                w.grad = grad.clone()
                opt.step()
            stacked.grad = torch.stack(step_grads)
            joint.step()
        torch.testing.assert_close(stacked.detach(), torch.stack([w.detach() for w in alone]), rtol=0, atol=1e-7)


def test_a_member_that_diverges_fails_alone_and_leaves_the_others_untouched():
    (x0, y0), (x1, y1) = gaussian(0.5, seed=0), gaussian(1.0, seed=1)
    x1 = x1.copy()
    x1[:] = np.nan
    budget = Budget(steps=40, batch_size=32)
    critics = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        critics.append(SeparableCritic(2, 2, 16, 1, 8, "relu"))
    objective = InfoNCE()
    healthy, broken = train_critics(stack_critics(critics), [objective, objective], [x0, x1], [y0, y1],
                                    budget, "cpu", [0, 1], lr=1e-3)
    assert isinstance(broken, FloatingPointError)
    assert isinstance(train_alone(SeparableCritic(2, 2, 16, 1, 8, "relu"), x1, y1, budget, 1), FloatingPointError)
    torch.manual_seed(0)
    assert_same(train_alone(SeparableCritic(2, 2, 16, 1, 8, "relu"), x0, y0, budget, 0), healthy, exact=True)


def train_alone(critic, x, y, budget, seed, lr=1e-3):
    """Train one critic on InfoNCE as a cell alone trains: a group of one."""
    (result,) = train_critics(stack_critics([critic]), [InfoNCE()], [x], [y], budget, "cpu", [seed], lr)
    return result


def textbook_heldout_fit(critic, objective, x, y, budget, seed, lr):
    """The held-out protocol written plainly for one unbatched critic: Adam on B rows of the training
    half drawn step by step from a generator seeded with `seed`, then the mean bound over the full
    held-out batches."""
    b, half = budget.batch_size, heldout_start(len(x), budget)
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    for _ in range(budget.steps):
        rows = torch.randint(half, (b,), generator=generator)
        loss, _ = objective(critic(x[rows], y[rows]), x[rows], y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    stop = half + (len(x) - half) // b * b
    with torch.no_grad():
        values = [objective(critic(xb, yb), xb, yb)[1]
                  for xb, yb in zip(x[half:stop].split(b), y[half:stop].split(b), strict=True)]
    return torch.stack(values).mean().item()


def test_a_plain_critic_trains_in_the_grouped_loop_as_in_a_textbook_loop(monkeypatch):
    # The group of one runs GroupedLinear and draws batch indices a chunk of steps at a time; a
    # plain nn.Linear critic under plain Adam, drawing step by step, must land on the same bound.
    monkeypatch.setattr(training, "INDEX_CHUNK", 16)  # 100 steps: six whole chunks and a partial one
    x, y = gaussian(0.5)
    budget = Budget(steps=100, batch_size=32)
    critics = []
    for _ in range(2):
        torch.manual_seed(0)
        critics.append(SeparableCritic(2, 2, 16, 1, 8, "relu"))
    grouped = train_alone(critics[0], x, y, budget, 3)
    plain = textbook_heldout_fit(critics[1], InfoNCE(), x, y, budget, 3, lr=1e-3)
    assert grouped.diagnostics["protocol"] == "heldout"
    assert abs(grouped.value - plain) < TOLERANCE, (grouped.value, plain)


def test_an_objective_with_parameters_cannot_be_shared():
    critics = [TwoSampleCritic(2, 2, 8, 1, 4, "relu") for _ in range(2)]
    objective = TUBA(dim_y=2, hidden=8)  # its baseline network would mix the members' gradients
    x, y = gaussian(0.5)
    with pytest.raises(ValueError, match="parameters of its own"):
        train_critics(stack_critics(critics), [objective, objective], [x, x], [y, y], Budget(steps=2, batch_size=32),
                      "cpu", [0, 1], lr=1e-3)


def cell(method="infonce", params=None, data="gaussian", data_params=None, seed=0, n=640, steps=20, study="estimation"):
    return Cell(suite="t", study=study, method=method, method_params={**SMALL, **(params or {})}, data=data,
                data_params=data_params or {"dim": 2, "mi": 0.5}, seed=seed, n=n,
                budget=Budget(steps=steps, batch_size=32), device="cpu", method_label=method, data_label=data)


def test_plan_groups_only_cells_that_can_share_one_model():
    compatible = [cell("infonce", seed=0), cell("nwj", seed=1), cell("mine", data_params={"dim": 2, "mi": 2.0})]
    apart = [
        cell("infonce", {"hidden": 32}),                       # another architecture
        cell("infonce", {"lr": 1e-3}),                         # another learning rate
        cell("infonce", data_params={"dim": 3, "mi": 0.5}),    # other dimensions
        cell("infonce", n=1280),                               # another sample size
        cell("infonce", steps=30),                             # another budget
    ]
    alone = Cell(suite="t", study="estimation", method="ksg", method_params={}, data="gaussian",
                 data_params={"dim": 2, "mi": 0.5}, seed=0, n=640, budget=Budget(steps=20, batch_size=32),
                 device="cpu", method_label="ksg", data_label="gaussian")
    units = grouping.plan([*compatible, *apart, alone])
    grouped = [u for u in units if len(u) > 1]
    assert [[c.key for c in u] for u in grouped] == [[c.key for c in compatible]]
    assert sorted(c.key for u in units for c in u) == sorted(c.key for c in [*compatible, *apart, alone])
    assert grouping.describe(units) == "grouped 3 cells into 1 batched model (6 cells run alone)"


def test_plan_cuts_groups_so_every_worker_has_a_model():
    cells = [cell(seed=s) for s in range(5)]
    assert sorted(len(u) for u in grouping.plan(cells, jobs=1)) == [5]
    assert sorted(len(u) for u in grouping.plan(cells, jobs=2)) == [2, 3]
    assert sorted(len(u) for u in grouping.plan(cells, max_group=2)) == [1, 2, 2]


def test_plan_caps_each_group_by_its_data():
    cells = [cell(seed=s) for s in range(5)]  # 640 rows x (2 + 2) float32 = 10240 bytes each
    assert sorted(len(u) for u in grouping.plan(cells, max_group_bytes=2 * 10240)) == [1, 2, 2]
    assert sorted(len(u) for u in grouping.plan(cells, max_group_bytes=10239)) == [1] * 5


def test_grouped_cells_report_what_each_cell_reports_alone():
    cells = [cell("infonce", seed=0), cell("mine", seed=1, data_params={"dim": 2, "mi": 1.0}),
             cell("js", seed=2), cell("nwj", seed=3, n=10)]  # too few samples: fails, and runs alone
    announced = []
    pairs = list(grouping.map_cells(InlineExecutor(), cells, announce=announced.append))
    assert announced == ["grouped 3 cells into 1 batched model (1 cell run alone)"]
    assert [c.key for c, _ in pairs] == [c.key for c in cells]
    for c, result in pairs:
        single = execute(c)
        assert result.status == single.status
        if single.status == "ok":
            assert result.estimate == single.estimate
            assert result.true_value == single.true_value
            assert result.diagnostics["group_size"] == 3
            assert result.wall_s > 0
        else:
            assert result.error.split(" (at")[0] == single.error.split(" (at")[0]
