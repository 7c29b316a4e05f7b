"""Numbers a user can trust without tuning: intervals, sanity flags, and selection without the truth.

The interval of a critic's held-out value is checked against what it claims to measure: for one
frozen critic, the spread of its held-out value over fresh held-out samples. The flags are checked
on cells built to raise them and on their rules' boundaries; [select] and `harness.estimate(select=)`
on the choice they make and on what they refuse.
"""

import json
import math
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import harness
from harness import metrics, python_api, registry, training
from harness.api import Budget, Estimate
from harness.cells import Cell, execute
from harness.errors import UserError
from harness.suite import load
from plugins.estimators import objectives
from plugins.estimators.critics import SeparableCritic, stack_critics
from plugins.estimators.variational_estimator import _bound_flags


def gaussian(mi, n, seed, dim=2):
    task = registry.get("task", "gaussian").instantiate({"dim": dim, "mi": mi})
    return task.sample(n, np.random.default_rng(seed))


def heldout_split(x, y):
    """A _Split whose every row is held out: the frozen critic is only valued."""
    stacked = [torch.as_tensor(a, dtype=torch.float32)[None] for a in (x, y)]
    return training._Split(*stacked, fit=0, train=0)


def test_the_heldout_interval_matches_the_spread_over_fresh_heldout_samples():
    """One frozen critic, 150 fresh held-out samples of 1000 rows in batches of 250: the standard error
    the subsets predict matches the standard deviation of the held-out value across samples.

    The spread's own sampling error over 150 samples is about 6% (sd of an sd, 1/sqrt(2 x 149)), the
    predicted error's mean is steadier; a ratio within [0.8, 1.25] allows more than 3 of those 6%.
    A formula off by the finite-population factor (x sqrt 2 at b = H / 2) or by sqrt K would fail.
    """
    torch.manual_seed(0)
    critic = stack_critics([SeparableCritic(2, 2, 32, 2, 8, "relu")])
    runs = [(objectives.InfoNCE(), 0, 1)]
    x, y = gaussian(1.0, 4000, seed=0)
    training.train_critics(critic, [runs[0][0]], [x], [y], Budget(steps=300, batch_size=128), "cpu", [0], 2e-3,
                           interval_resamples=0)
    values, errors = [], []
    for seed in range(1, 151):
        split = heldout_split(*gaussian(1.0, 1000, seed=seed))
        (value,) = training.heldout_values(critic, runs, split.x, split.y, 250)
        intervals = training.Intervals(40, [seed])
        (bounds,) = intervals.heldout([value], critic, runs, split, 250)
        values.append(value)
        errors.append((bounds[1] - bounds[0]) / (2 * 1.96))
    ratio = np.sqrt(np.mean(np.square(errors))) / np.std(values, ddof=1)
    assert 0.8 < ratio < 1.25, ratio


def fit(name, n, steps, batch, seed=0, mi=1.0, **params):
    x, y = gaussian(mi, n, seed=seed)
    # half held out: the row counts the tests below name
    estimator = registry.get("estimator", name).instantiate({"hidden": 32, "layers": 2, "heldout": 0.5, **params})
    return estimator.fit_estimate(x, y, Budget(steps=steps, batch_size=batch), "cpu", seed)


def test_every_protocol_gives_an_interval_around_its_estimate_and_none_when_asked():
    held = fit("infonce", 2000, 200, 64)  # held out, checkpoints by default
    streamed = fit("infonce", 200 * 64, 200, 64)  # a fresh batch every step
    plain = fit("nwj", 2000, 200, 64, checkpoint_every=0)  # held out, the last critic
    for estimate in (held, streamed, plain):
        low, high = estimate.interval
        assert low < estimate.value < high and high - low < 1.0
    assert held.criterion is not None and streamed.criterion is None and plain.criterion is None
    assert fit("infonce", 2000, 200, 64, interval_resamples=0).interval is None


@pytest.mark.parametrize("name", ["infonce", "tuba"])  # TUBA: an objective with weights of its own
def test_a_grouped_cell_gets_the_interval_it_gets_alone(name):
    """Members that chose different checkpoints are valued, in one pass, each at its own checkpoint."""
    estimator = registry.get("estimator", name).instantiate({"hidden": 16, "layers": 2, "checkpoint_every": 25})
    budget = Budget(steps=200, batch_size=64)
    members = [(estimator, *gaussian(0.2 + 1.2 * i, 2000, seed=i), 10 + i) for i in range(4)]
    grouped = estimator.fit_estimate_group(members, budget, "cpu")
    assert len({estimate.diagnostics["chosen_step"] for estimate in grouped}) > 1
    for member, together in zip(members, grouped, strict=True):
        alone = estimator.fit_estimate(member[1], member[2], budget, "cpu", member[3])
        assert (alone.value, alone.interval, alone.criterion) == (together.value, together.interval,
                                                                  together.criterion)


def test_the_cap_flag_sits_within_its_margin_of_log_b():
    cap = math.log(64)
    near, far = Estimate(value=cap - 0.05), Estimate(value=cap - 0.15)
    assert "at_cap" in _bound_flags(objectives.InfoNCE(), near, cap, 64)
    assert _bound_flags(objectives.InfoNCE(), far, cap, 64) == {}


def test_the_noise_flag_compares_the_training_variance_with_e_to_the_i_over_b():
    allowed = math.exp(2.0) / 64
    noisy = Estimate(value=2.0, diagnostics={"last_quarter_var": 1.5 * allowed})
    quiet = Estimate(value=2.0, diagnostics={"last_quarter_var": 0.5 * allowed})
    assert "noisy" in _bound_flags(objectives.NWJ(), noisy, None, 64)
    assert _bound_flags(objectives.NWJ(), quiet, None, 64) == {}
    assert _bound_flags(objectives.InfoNCE(), noisy, math.log(64), 64) == {}  # its variance is not e^I / B


def test_a_cell_at_the_cap_is_flagged_by_the_fit():
    """15 nats through fresh batches of 8: InfoNCE can report at most log 8 = 2.08 and gets there."""
    estimate = fit("infonce", 8 * 800, 800, 8, mi=15.0)
    assert estimate.value > math.log(8) - 0.1 and "at_cap" in estimate.flags


def test_a_large_critic_on_few_rows_is_flagged_as_overfit():
    estimate = fit("nwj", 300, 600, 32, mi=0.5, hidden=256, checkpoint_every=0, marginals="raw")
    assert "overfit" in estimate.flags, estimate.flags


def test_small_training_splits_are_flagged():
    assert "few_samples" in fit("infonce", 600, 50, 128).flags  # 270 training rows, under 4 batches
    assert "batch_exceeds_split" in fit("infonce", 520, 50, 256, value_batch=64).flags  # 234 rows, batch 256
    assert not fit("infonce", 4000, 50, 64).flags.keys() & {"few_samples", "batch_exceeds_split"}


def test_the_api_warns_once_per_flag(monkeypatch):
    monkeypatch.setattr(python_api, "_WARNED", set())
    x, y = gaussian(0.5, 600, seed=0)
    with pytest.warns(python_api.EstimateFlag, match="few_samples"):
        first = harness.estimate("infonce", x, y, steps=30, batch_size=128, hidden=16)
    assert "few_samples" in first.flags
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        harness.estimate("infonce", x, y, steps=30, batch_size=128, hidden=16)  # the same flag: no second warning


def test_the_api_selects_by_the_criterion_and_lists_every_configuration():
    x, y = gaussian(1.0, 3000, seed=0)
    chosen = harness.estimate("infonce", x, y, steps=200, batch_size=64, hidden=16, select={"lr": [3e-3, 1e-5]})
    tried = chosen.diagnostics["selection"]
    assert [entry["params"]["lr"] for entry in tried] == [3e-3, 1e-5]
    assert chosen.criterion == max(entry["criterion"] for entry in tried)
    assert chosen.diagnostics["selected_params"]["lr"] == 3e-3  # lr 1e-5 barely moves in 200 steps


@pytest.mark.parametrize("select, complaint", [
    ({"lr": []}, "non-empty list"),
    ([1e-3], "must be a dict"),
    ({"learning_rate": [1e-3]}, "not parameters of the estimator"),
    ({"hiden": [64]}, "Did you mean 'hidden'"),
    ({"lr": [-1.0]}, "lr"),
])
def test_a_bad_select_is_one_user_error(select, complaint):
    x, y = gaussian(1.0, 600, seed=0)
    with pytest.raises(UserError, match=complaint):
        harness.estimate("infonce", x, y, steps=10, batch_size=64, select=select)


def test_selection_needs_a_criterion():
    x, y = gaussian(1.0, 600, seed=0)
    with pytest.raises(UserError, match="checkpoint_every"):
        harness.estimate("infonce", x, y, steps=10, batch_size=64, checkpoint_every=0, select={"lr": [1e-3, 2e-3]})


SELECT_SUITE = """
[suite]
name = "select_test"
seeds = [0, 1]
[budget]
samples = [1500]
steps = 120
batch_size = 64
[[estimators]]
name = "infonce"
label = "tuned"
params = { hidden = 16, layers = 2 }
[select.tuned]
grid = { lr = [3e-3, 1e-5] }
[[estimators]]
name = "gaussian_cca"
[[tasks]]
name = "gaussian(dim=2, mi=1.0)"
"""


def write(tmp_path, body):
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_select_table_expands_its_entry_under_one_label(tmp_path):
    cells = load(write(tmp_path, SELECT_SUITE)).cells
    tuned = [c for c in cells if c.method_label == "tuned"]
    assert sorted({c.method_params["lr"] for c in tuned}) == [1e-5, 3e-3] and len(tuned) == 4


@pytest.mark.parametrize("edit, complaint", [
    (("[select.tuned]", "[select.untuned]"), "names no \\[\\[estimators\\]\\] entry"),
    (("params = { hidden = 16, layers = 2 }", "params = { hidden = 16, layers = 2, lr = 1e-3 }"), "params too"),
    (("grid = { lr = [3e-3, 1e-5] }", "grid = { learning_rate = [3e-3] }"), "learning_rate"),
    (("grid = { lr = [3e-3, 1e-5] }", "grid = {}"), "grid"),
])
def test_a_bad_select_table_is_refused_at_load(tmp_path, edit, complaint):
    with pytest.raises(UserError, match=complaint):
        load(write(tmp_path, SELECT_SUITE.replace(*edit)))


def test_the_grid_limit_counts_the_select_configurations(tmp_path):
    with pytest.raises(UserError, match="3 estimator variants"):
        load(write(tmp_path, SELECT_SUITE), max_cells=5)


def test_a_selected_run_reports_the_criterion_choice_beside_the_truth_choice(tmp_path):
    from harness import report, runner
    from harness.store import Store

    store = Store(tmp_path / "s.sqlite")
    runner.run(load(write(tmp_path, SELECT_SUITE)), store, show_progress=False)
    cells = store.cells("select_test")
    summary = metrics.summarise(cells)
    assert summary.set_index("method").loc["tuned", "seeds"] == 2  # one configuration per seed
    chosen = cells.loc[metrics.apply_selection(cells).index]
    assert sorted(chosen[chosen["method_label"] == "tuned"]["method_params"].map(lambda p: p["lr"])) == [3e-3, 3e-3]
    table = metrics.selection_summary(cells)
    assert table["gap"].iloc[0] == pytest.approx(table["selected_error"].iloc[0] - table["oracle_error"].iloc[0])
    assert (table["gap"] >= 0).all()  # the truth's pick is never worse than the criterion's
    exported = metrics.export_frame(cells)
    assert sorted(exported[exported["label"] == "tuned"]["selected"]) == ["no", "no", "yes", "yes"]
    page = (report.build(store, "select_test", tmp_path / "reports") / "index.md").read_text()
    assert "## Selection without the truth" in page and "## Interval coverage" in page


def frame(rows):
    base = {"kind": "estimation", "method_label": "m", "data_label": "t", "n": 10, "status": "ok", "true_value": 1.0,
            "method_params": {}, "flags": {}, "key": "k"}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_a_seed_far_below_the_best_is_flagged_not_converged():
    cells = metrics.with_seed_flags(frame([{"estimate": 1.0}, {"estimate": 0.09}, {"estimate": -0.01},
                                           {"estimate": 0.11}]))
    assert [metrics.SEED_FLAG in f for f in cells["flags"]] == [False, True, True, False]


def test_coverage_counts_the_intervals_that_hold_the_truth_and_names_under_coverage():
    rows = [{"interval_low": 0.9, "interval_high": 1.1}] * 6 + [{"interval_low": 1.2, "interval_high": 1.4}] * 4
    (row,) = metrics.coverage(frame(rows)).to_dict("records")
    assert row["coverage"] == 60.0 and row["verdict"] == "under-covers by 35 points"
    (row,) = metrics.coverage(frame(rows[:6] * 3 + rows[6:7])).to_dict("records")  # 18 of 19: 94.7%
    assert row["verdict"] == "within 5 points of 95%"


def test_the_store_keeps_interval_criterion_and_flags(tmp_path):
    from harness.store import Store

    cell = Cell("s", "estimation", "infonce", {"hidden": 16, "layers": 2}, "gaussian", {"dim": 2, "mi": 1.0}, 0, 600,
                Budget(steps=30, batch_size=128), "cpu", "infonce", "g")
    result = execute(cell)
    store = Store(tmp_path / "s.sqlite")
    store.write("r", cell, result)
    (row,) = store.cells("r").to_dict("records")
    assert (row["interval_low"], row["interval_high"]) == (result.interval_low, result.interval_high)
    assert row["criterion"] == pytest.approx(result.criterion) and row["flags"] == result.flags
    assert "few_samples" in json.loads(metrics.export_frame(store.cells("r"))["flags"].iloc[0])


@pytest.mark.parametrize("task", ["gaussian(dim=2, mi=1.0)", "half_cube(gaussian(dim=3, mi=0.5))",
                                  "student_t(2, 2, dof=2.0, pairs=0)", "mixture_x", "noisy_channel"])
def test_a_pmi_profile_averages_to_the_tasks_mi(task):
    """The mean of n PMI samples equals the MI within 4 standard errors (sd / sqrt n), plus the truth's own."""
    from harness.call_syntax import parse_reference

    profile = harness.pmi_profile(task, n=20_000, seed=3)
    name, params = parse_reference(task, "task", "test")
    truth = registry.get("task", name).instantiate(params).ground_truth("mi")
    error = np.hypot(profile.std(ddof=1) / np.sqrt(len(profile)), truth.stderr)
    assert abs(profile.mean() - truth.value) < 4 * error, (profile.mean(), truth)
    assert (profile == harness.pmi_profile(task, n=20_000, seed=3)).all()


@pytest.mark.parametrize("task, complaint", [("gaussian_pair", "no PMI profile"), (3, "registered task's name"),
                                             ("gaussian(dim=0)", "dim")])
def test_a_task_without_a_pmi_profile_is_one_user_error(task, complaint):
    with pytest.raises(UserError, match=complaint):
        harness.pmi_profile(task, n=100)
