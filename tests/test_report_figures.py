"""The report's figures and tables: axes that fit the data, one panel per estimator, a cap only where an
estimator declares one, and times shared by a group marked as such. Read from the matplotlib objects
the figure functions return, never from pixels."""

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from harness import metrics, registry, report, runner
from harness.api import Budget
from harness.executors import InlineExecutor
from harness.report import figures
from harness.report.section import Section
from harness.suite import load

CAP = math.log(64)


def summary_rows(rows: list[dict]) -> pd.DataFrame:
    """A summary frame as metrics.summarise writes it, from the columns a test cares about."""
    defaults = {"kind": "estimation", "n": 4000, "seeds": 3, "failures": 0, "device": "cpu", "wall_s": 0.3,
                "steps_per_s": np.nan, "kernel_ms": np.nan, "peak_mem_mb": np.nan, "shared_by": 1, "cap_nats": np.nan}
    frame = pd.DataFrame([defaults | row for row in rows])
    frame["bias"] = frame["mean"] - frame["true"]
    return frame


def quickstart_like() -> pd.DataFrame:
    """Five estimators on three tasks with small biases and spreads, as the quickstart gives."""
    rng = np.random.default_rng(0)
    rows = []
    for method in ["ksg", "gaussian_cca", "bound_a", "bound_b", "bound_c"]:
        for data, truth in [("g(mi=0.5)", 0.5), ("g(mi=2.0)", 2.0), ("cube(mi=1.0)", 1.0)]:
            rows.append({"method": method, "data": data, "true": truth, "mean": truth - rng.uniform(0, 0.45),
                         "std": rng.uniform(0.007, 0.2), "cap_nats": CAP if method == "bound_b" else np.nan})
    return summary_rows(rows)


def points(ax) -> np.ndarray:
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])


def share_of_axis(values: np.ndarray, lim: tuple[float, float], log: bool = False) -> float:
    f = np.log10 if log else (lambda v: v)
    return float((f(values.max()) - f(values.min())) / (f(lim[1]) - f(lim[0])))


def test_bias_variance_axes_hold_every_point_and_the_points_fill_the_panel():
    drawn = figures.bias_variance(quickstart_like())
    (ax,) = [a for a in drawn.figure.axes if a.collections]
    xy = points(ax)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert (x0 < xy[:, 0]).all() and (xy[:, 0] < x1).all() and (y0 < xy[:, 1]).all() and (xy[:, 1] < y1).all()
    # the old fixed +-3 nats frame left these points a tenth of the panel
    assert share_of_axis(xy[:, 0], (x0, x1)) > 0.6 and share_of_axis(xy[:, 1], (y0, y1)) > 0.6
    assert ax.get_yscale() == "linear"
    plt.close(drawn.figure)


def test_bias_variance_goes_logarithmic_only_when_the_spread_spans_decades():
    frame = quickstart_like()
    frame.loc[0, "std"], frame.loc[1, "std"] = 30.0, 1e-4  # a divergent estimator beside an exact one
    frame.loc[0, "mean"] = frame.loc[0, "true"] - 35.0
    frame["bias"] = frame["mean"] - frame["true"]
    drawn = figures.bias_variance(frame)
    (ax,) = [a for a in drawn.figure.axes if a.collections]
    xy = points(ax)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    assert x0 < xy[:, 0].min() and xy[:, 0].max() < x1 and y0 < xy[:, 1].min() and xy[:, 1].max() < y1
    assert share_of_axis(xy[:, 1], (y0, y1), log=True) > 0.8
    plt.close(drawn.figure)


@pytest.mark.parametrize("count", [5, 15])
def test_estimate_vs_truth_has_one_panel_per_estimator(count):
    frame = summary_rows([{"method": f"estimator_{m}(hidden=64, embed_dim=16, lr=0.002)", "data": f"t{t}",
                           "true": t / 2, "mean": t / 2 - 0.1, "std": 0.05} for m in range(count) for t in (1, 2, 4)])
    drawn = figures.estimate_vs_truth(frame)
    assert list(drawn.panels) == list(dict.fromkeys(frame["method"]))
    visible = [ax for ax in drawn.figure.axes if ax.axison]
    assert len(visible) == count
    grid = visible[0].get_subplotspec().get_gridspec()
    assert grid.ncols <= figures.COLUMNS and grid.nrows > 1  # wrapped into rows, not one long strip
    for method, ax in drawn.panels.items():
        x, y = points_of_errorbars(ax)
        assert np.allclose(sorted(x), sorted(frame.loc[frame["method"] == method, "true"]))
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 < x.min() and x.max() < x1 and y0 < y.min() and y.max() < y1
    plt.close(drawn.figure)


def points_of_errorbars(ax) -> tuple[np.ndarray, np.ndarray]:
    markers = [line for line in ax.lines if line.get_marker() == "o"]  # not the error bars' caps
    return (np.concatenate([m.get_xdata() for m in markers]).astype(float),
            np.concatenate([m.get_ydata() for m in markers]).astype(float))


def cap_lines(ax) -> list:
    return [line for line in ax.lines if line.get_gid() == figures.CAP_GID]


def test_the_cap_is_drawn_only_for_estimators_that_declare_one():
    frame = quickstart_like()
    frame.loc[frame["method"] == "bound_b", "mean"] = [3.0, 4.1, 3.5]  # near its cap: the line is in view
    drawn = figures.estimate_vs_truth(frame)
    assert drawn.caps == {"bound_b": [pytest.approx(CAP)]}
    assert [line.get_ydata()[0] for line in cap_lines(drawn.panels["bound_b"])] == [pytest.approx(CAP)]
    for method in ["ksg", "gaussian_cca", "bound_a", "bound_c"]:
        assert not cap_lines(drawn.panels[method]) and "cap" not in drawn.panels[method].get_title()
    plt.close(drawn.figure)


def test_a_cap_far_above_the_points_is_named_not_drawn():
    drawn = figures.estimate_vs_truth(quickstart_like())  # bound_b's estimates stay below 2 nats, its cap 4.16
    ax = drawn.panels["bound_b"]
    assert not cap_lines(ax) and "cap 4.16 nats" in ax.get_title()
    assert ax.get_ylim()[1] < CAP
    plt.close(drawn.figure)


def trajectory_cells(caps: dict[str, float]) -> pd.DataFrame:
    rows = []
    for method in ["bound_a", "bound_b"]:
        for truth in (2.0, 6.0):
            for seed in range(2):
                curve = [(step, min(truth, 4.1) * (1 - math.exp(-step / 100))) for step in range(10, 410, 10)]
                rows.append({"kind": "estimation", "status": "ok", "method_label": method, "data": "staircase",
                             "data_label": f"staircase(mi={truth})", "true_value": truth, "seed": seed,
                             "trajectory": curve,
                             "diagnostics": {"cap_nats": caps[method]} if method in caps else {}})
    return pd.DataFrame(rows)


def test_trajectories_draw_the_cap_only_where_the_cells_declare_it():
    drawn = figures.trajectories(trajectory_cells({"bound_b": CAP}))
    assert drawn.caps == {"bound_b": [CAP]}
    assert len(cap_lines(drawn.panels["bound_b"])) == 1 and not cap_lines(drawn.panels["bound_a"])
    for ax in drawn.panels.values():  # the truths (2 and 6 nats) and the curves (0.2 to 4.1) fit, and no more
        y0, y1 = ax.get_ylim()
        assert -0.5 < y0 < 0.2 and 6.0 < y1 < 7.0
    plt.close(drawn.figure)


def test_the_timing_table_marks_rows_whose_time_a_group_shared():
    frame = summary_rows([
        {"method": "alone", "data": "t", "true": 1.0, "mean": 0.9, "std": 0.1, "shared_by": 1},
        {"method": "grouped", "data": "t", "true": 1.0, "mean": 0.9, "std": 0.1, "shared_by": 27,
         "kernel_ms": 149.4},
    ])
    table, note = report.timing_table(frame)
    assert list(table["shared_by"]) == ["", "27"]
    assert "Shared times" in note and "divided evenly" in note
    _, alone_note = report.timing_table(frame[frame["method"] == "alone"])
    assert "Shared times" not in alone_note
    cells = pd.DataFrame({"status": ["ok"], "device": ["cpu"], "wall_s": [0.1]})
    page = report.render_markdown("t", cells, [Section(report.TIMING_HEADING, table, note)], Path("."))
    header = next(line for line in page.splitlines() if line.startswith("| method"))
    assert "shared_by" in header and "**Shared times.**" in page


def test_the_summary_counts_the_cells_a_time_was_shared_among():
    def cell(diagnostics, wall_s):
        return {"kind": "estimation", "method_label": "m", "data_label": "t", "n": 10, "status": "ok",
                "estimate": 1.0, "true_value": 1.0, "wall_s": wall_s, "steps": 400, "kernel_ms": 100.0,
                "peak_mem_mb": 1.0, "device": "cpu", "metrics": {}, "diagnostics": diagnostics, "method_params": {},
                "flags": {}, "interval_low": None, "interval_high": None, "criterion": None, "key": "k"}
    grouped = [cell({"group_size": 27, "group_kernel_ms": 2700.0, "group_wall_s": 8.1, "cap_nats": CAP}, 0.3)] * 2
    # a unit that fell back to fitting alone still shared its wall time: the unit's size from group_wall_s
    fallback = [cell({"group_wall_s": 0.9}, 0.3)] * 2
    alone = [cell({}, 0.3)] * 2
    for cells, shared, cap in [(grouped, 27, CAP), (fallback, 3, np.nan), (alone, 1, np.nan)]:
        summary = metrics.summarise(pd.DataFrame(cells))
        assert summary["shared_by"].tolist() == [shared]
        np.testing.assert_allclose(summary["cap_nats"], [cap])


def correlated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, 0.8 * x + 0.6 * rng.standard_normal((n, 2))


@pytest.mark.parametrize("name, params, budget, cap", [
    ("infonce", {}, Budget(steps=5, batch_size=16), math.log(16)),
    ("interpolated", {"alpha": 0.5}, Budget(steps=5, batch_size=16), 1 + math.log(15 / 0.5)),
    ("interpolated", {"alpha": 1.0}, Budget(steps=5, batch_size=16), math.log(15)),
    # a chosen checkpoint is valued on the held-out rows (20% of 256: 51) as one batch
    ("infonce", {"checkpoint_every": 2}, Budget(steps=20, batch_size=16), math.log(51)),
    ("interpolated", {"alpha": 0.0}, Budget(steps=5, batch_size=16), None),
    ("nwj", {}, Budget(steps=5, batch_size=16), None),
    ("mine", {}, Budget(steps=5, batch_size=16), None),
])
def test_capped_bounds_declare_their_cap_for_the_report(name, params, budget, cap):
    estimator = registry.get("estimator", name).instantiate({"hidden": 8, "embed_dim": 4, **params})
    estimate = estimator.fit_estimate(*correlated(256), budget, "cpu", 0)
    assert estimate.diagnostics.get("cap_nats") == (pytest.approx(cap) if cap else None)
    if cap:
        assert estimate.value <= cap + 1e-5


def test_the_page_has_every_section_in_order(plugin_file, tmp_path, store):
    registry.load_plugin_file(plugin_file("toy"))
    try:
        path = tmp_path / "toy.toml"
        path.write_text('suite = { name = "toy", seeds = [0, 1, 2] }\nbudget = { samples = [2000] }\n'
                        'estimators = [{ name = "toy_correlation" }]\n'
                        'tasks = [{ name = "toy_gaussian", grid = { rho = [0.3, 0.6, 0.9] } }]\n')
        runner.run(load(path), store, executor=InlineExecutor(), show_progress=False)
        out = report.build(store, "toy", tmp_path / "reports")
    finally:
        registry.unregister(plugin_file("toy"))
    page = (out / "index.md").read_text()
    headings = [line[3:] for line in page.splitlines() if line.startswith("## ")]
    assert headings == [report.HEADINGS["estimation"], "Estimate against truth", "Bias against spread",
                        "Relative error per estimator and task", "Estimates over training", report.TIMING_HEADING]
    assert "nan" not in page and "Shared times" not in page  # the toy's cells ran alone
    for figure in ["estimate_vs_truth.png", "bias_variance.png", "error_heatmap.png", "trajectories.png"]:
        assert (out / figure).stat().st_size > 10_000
    assert 'href="#s5"' in (out / "index.html").read_text()


def test_an_estimator_whose_seeds_all_failed_keeps_its_panel():
    frame = quickstart_like()
    frame.loc[frame["method"] == "bound_a", ["mean", "std", "bias"]] = np.nan
    drawn = figures.estimate_vs_truth(frame)
    assert len(drawn.panels) == 5
    assert "no seed finished" in [text.get_text() for text in drawn.panels["bound_a"].texts]
    plt.close(drawn.figure)
