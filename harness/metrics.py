"""Summary statistics over seeds: bias, variance, MSE, confidence intervals, failures, speed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["kind", "method_label", "data_label", "n"]


SEED_FLAG = "not_converged"
CHOSEN_BY = ("selected", "oracle")  # by the criterion (no truth), and by the truth (optimistic)


def export_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, the columns of `mi-harness export`: every metric of a cell as a `metric_<name>`
    column, its flags (with the across-seed one) as JSON, and for a [select] grid which configuration
    the criterion and the truth chose."""
    cells = with_seed_flags(cells)
    chosen = chosen_configurations(cells)
    frame = pd.DataFrame({
        "suite": cells["suite"], "cell": cells["key"], "kind": cells["kind"],
        "estimator": cells["method"], "label": cells["method_label"],
        "params": cells["method_params"].map(lambda p: json.dumps(p, sort_keys=True)),
        "task": cells["data"], "task_label": cells["data_label"],
        "task_params": cells["data_params"].map(lambda p: json.dumps(p, sort_keys=True)),
        "seed": cells["seed"], "n": cells["n"], "true_value": cells["true_value"],
        "true_stderr": cells["true_stderr"], "estimate": cells["estimate"], "status": cells["status"],
        "error": cells["error"], "wall_s": cells["wall_s"], "steps": cells["steps"],
        "kernel_ms": cells["kernel_ms"], "peak_mem_mb": cells["peak_mem_mb"], "device": cells["device"],
        "interval_low": cells["interval_low"], "interval_high": cells["interval_high"],
        "criterion": cells["criterion"], "flags": cells["flags"].map(lambda f: json.dumps(f, sort_keys=True)),
        **{column: cells["key"].map(lambda key, c=column: chosen[c].get(key, "")) for column in CHOSEN_BY},
    })
    names = sorted({name for m in cells["metrics"] for name, value in m.items() if _scalar(value)})
    for name in names:
        frame[f"metric_{name}"] = cells["metrics"].map(lambda m, n=name: m.get(n) if _scalar(m.get(n)) else None)
    return frame


def _scalar(value) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def with_seed_flags(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with Beyond-Normal's across-seed flag added: an estimate below 0, or below 10% of the best
    seed's of its configuration, where the truth is positive (it did not converge)."""
    cells = cells.copy()
    cells["flags"] = [dict(f or {}) for f in cells["flags"]]
    ok = cells[(cells["status"] == "ok") & (cells["kind"] == "estimation")]
    params = ok["method_params"].map(lambda p: json.dumps(p, sort_keys=True))
    for _, group in ok.groupby([*(ok[c] for c in GROUP), params], sort=False):
        estimates = group["estimate"].astype(float)
        if not group["true_value"].astype(float).mean() > 0:
            continue
        best = estimates.max()
        for index, value in estimates.items():
            if value < 0 or value < 0.1 * best:
                cells.at[index, "flags"][SEED_FLAG] = (
                    f"{value:.3g} nats is below 10% of the best seed's {best:.3g} (or below 0): this seed did not "
                    "converge (Beyond Normal's failure rule)")
    return cells


def selection_groups(cells: pd.DataFrame) -> pd.core.groupby.DataFrameGroupBy | None:
    """A [select] grid's cells by (label, task, n, seed): the labels that hold several configurations."""
    estimation = cells[cells["kind"] == "estimation"]
    params = estimation["method_params"].map(lambda p: json.dumps(p, sort_keys=True))
    configurations = params.groupby(estimation["method_label"]).nunique()
    gridded = estimation[estimation["method_label"].isin(configurations[configurations > 1].index)]
    if gridded.empty:
        return None
    return gridded.groupby(["method_label", "data_label", "n", "seed"], sort=False)


def chosen_configurations(cells: pd.DataFrame) -> dict[str, dict[str, str]]:
    """For a [select] grid's cells, cell key -> "yes" / "no" under `selected` (the highest criterion)
    and `oracle` (the least error against the truth)."""
    chosen: dict[str, dict[str, str]] = {column: {} for column in CHOSEN_BY}
    groups = selection_groups(cells)
    for _, group in groups if groups is not None else ():
        picks = _picks(group)
        for column in CHOSEN_BY:
            for index, key in group["key"].items():
                chosen[column][key] = "yes" if index == picks[column] else "no"
    return chosen


def _picks(group: pd.DataFrame) -> dict[str, int | None]:
    ok = group[group["status"] == "ok"]
    by_criterion = ok["criterion"].astype(float).dropna()
    error = (ok["estimate"].astype(float) - ok["true_value"].astype(float)).abs().dropna()
    return {"selected": by_criterion.idxmax() if len(by_criterion) else None,
            "oracle": error.idxmin() if len(error) else None}


def apply_selection(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells a summary is made of: for a [select] grid, per (label, task, n, seed) the configuration with
    the highest criterion (chosen without the truth); a group where no configuration gave one is one failed cell."""
    groups = selection_groups(cells)
    if groups is None:
        return cells
    keep = cells.index.difference([i for _, group in groups for i in group.index])
    rows = [cells.loc[keep]]
    for _, group in groups:
        pick = _picks(group)["selected"]
        if pick is not None:
            rows.append(cells.loc[[pick]])
            continue
        failed = group.iloc[[0]].copy()
        failed["status"] = "failed"
        failed["error"] = ("no configuration of the [select] grid gave a selection criterion (estimators report it "
                           "from a validation split: for variational ones, set checkpoint_every > 0)")
        rows.append(failed)
    return pd.concat(rows).sort_index()


def selection_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per [select] label x task x n: the mean absolute error of the configuration chosen by the criterion,
    of the one the truth would choose (optimistic, as some benchmarks report), and the gap between them."""
    groups = selection_groups(cells)
    if groups is None:
        return pd.DataFrame()
    rows = []
    for (label, data, n, seed), group in groups:
        picks = _picks(group)
        error = (group["estimate"].astype(float) - group["true_value"].astype(float)).abs()
        rows.append({"method": label, "data": data, "n": n, "seed": seed,
                     **{f"{c}_error": error[picks[c]] if picks[c] is not None else np.nan for c in CHOSEN_BY},
                     "configurations": len(group)})
    per_seed = pd.DataFrame(rows)
    table = per_seed.groupby(["method", "data", "n"], sort=False).agg(
        selected_error=("selected_error", "mean"), oracle_error=("oracle_error", "mean"),
        configurations=("configurations", "max"), seeds=("seed", "count")).reset_index()
    table["gap"] = table["selected_error"] - table["oracle_error"]
    return table


def holds_truth(cells: pd.DataFrame) -> pd.Series:
    """Per cell, whether its own interval contains the truth."""
    truth = cells["true_value"].astype(float)
    return (cells["interval_low"].astype(float) <= truth) & (truth <= cells["interval_high"].astype(float))


def coverage(cells: pd.DataFrame, level: float = 0.95, tolerance: float = 0.05) -> pd.DataFrame:
    """Per estimator label, over the ok cells with an interval and a truth: the share of intervals that
    contain the truth, the mean width, and whether the intervals under-cover (more than `tolerance` below
    `level`)."""
    has = cells[(cells["kind"] == "estimation") & (cells["status"] == "ok")
                & cells["interval_low"].notna() & cells["true_value"].notna()]
    rows = []
    for label, group in has.groupby("method_label", sort=False):
        share = float(holds_truth(group).mean())
        width = group["interval_high"].astype(float) - group["interval_low"].astype(float)
        rows.append({"method": label, "cells": len(group), "coverage": 100 * share, "mean_width": float(width.mean()),
                     "verdict": (f"under-covers by {100 * (level - share):.0f} points" if share < level - tolerance
                                 else "within 5 points of 95%" if share <= level + tolerance else
                                 f"over-covers by {100 * (share - level):.0f} points (wide)")})
    return pd.DataFrame(rows)


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per method x data x sample size, statistics over the seeds that finished.

    A [select] grid counts the configuration its criterion chose per seed (apply_selection); `interval` is
    the mean of the cells' own 95% intervals, `covered` how many of them contain the truth, `flags` how many
    cells carry each sanity flag (the across-seed `not_converged` counts among `failures` too).
    """
    rows = []
    cells = with_seed_flags(apply_selection(cells))
    for (kind, method, data, n), group in cells.groupby(GROUP, sort=False):
        ok = group[group["status"] == "ok"]
        estimates = ok["estimate"].to_numpy(dtype=float)
        truth = ok["true_value"].astype(float).mean() if len(ok) else np.nan
        flagged = int(ok["flags"].map(lambda f: SEED_FLAG in f).sum())
        flag_counts = pd.Series([name for f in ok["flags"] for name in f], dtype=object).value_counts()
        covered = ok[ok["interval_low"].notna()]
        seconds = ok["kernel_ms"].astype(float) / 1000.0
        row = {
            "kind": kind, "method": method, "data": data, "n": n,
            "seeds": len(ok), "failures": int(len(group) - len(ok)) + flagged,
            "true": truth,
            "mean": estimates.mean() if len(estimates) else np.nan,
            "std": estimates.std(ddof=1) if len(estimates) > 1 else np.nan,
            "ci95": ci_halfwidth(estimates),
            "interval": (f"[{covered['interval_low'].astype(float).mean():.3f}, "
                         f"{covered['interval_high'].astype(float).mean():.3f}]" if len(covered) else ""),
            "covered": (f"{int(holds_truth(covered).sum())}/{len(covered)}"
                        if len(covered) and covered["true_value"].notna().all() else ""),
            "flags": ", ".join(f"{name} {count}" for name, count in flag_counts.items()),
            "wall_s": ok["wall_s"].mean(),
            "steps_per_s": (ok["steps"] / seconds).mean() if len(ok) and (seconds > 0).all() else np.nan,
            "kernel_ms": ok["kernel_ms"].astype(float).mean(),
            "peak_mem_mb": ok["peak_mem_mb"].astype(float).max() if len(ok) else np.nan,
            "device": ", ".join(sorted(group["device"].unique())),
            "shared_by": max((shared_by(r.diagnostics, r.wall_s) for r in ok.itertuples()), default=1),
            "cap_nats": max((float(d["cap_nats"]) for d in ok["diagnostics"] if d.get("cap_nats") is not None),
                            default=np.nan),
        }
        row["bias"] = row["mean"] - truth
        row["variance"] = row["std"] ** 2
        row["mse"] = float(np.mean((estimates - truth) ** 2)) if len(estimates) else np.nan
        if kind == "representation":
            row |= accuracy_columns(ok)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if (table["kind"] == "representation").any():
        table["untrained"] = untrained_accuracy(table)
    order = {method: i for i, method in enumerate(dict.fromkeys(cells["method_label"]))}
    return (table.assign(_order=table["method"].map(order)).sort_values(["_order", "data", "true", "n"])
            .drop(columns="_order").reset_index(drop=True))


SELECTIONS = {"fixed": "accuracy_fixed", "as_published": "accuracy_as_published", "inner_cv": "accuracy_inner_cv",
              "best_on_test": "accuracy_best_on_test"}


def accuracy_columns(ok: pd.DataFrame) -> dict[str, Any]:
    """An encoder row's means over seeds of the checkpoint-selection accuracies (harness.downstream), the
    optimism of the published selection over the fixed protocol, and what identifies an untrained baseline."""
    def mean(name: str) -> float:
        values = ok["metrics"].map(lambda m: m.get(name, np.nan)).astype(float)
        return float(values.mean()) if values.notna().any() else np.nan

    row: dict[str, Any] = {column: mean(name) for column, name in SELECTIONS.items()}
    row["optimism"] = row["as_published"] - row["fixed"]
    row["probe_std"] = mean("accuracy_std")
    row["encoder"] = ok["method"].iloc[0] if len(ok) else ""
    row["untrained_baseline"] = bool(len(ok)) and bool(ok["diagnostics"].map(
        lambda d: bool(d.get("untrained_baseline"))).all())
    return row


def untrained_accuracy(table: pd.DataFrame) -> pd.Series:
    """For each trained encoder row, the accuracy of the untrained baseline on the same data: the same encoder's
    where the run has it, else the run's only untrained baseline on that data; NaN for the baselines themselves."""
    encoders = table[table["kind"] == "representation"]
    baselines = encoders[encoders["untrained_baseline"]]

    def lookup(row: pd.Series) -> float:
        if row["kind"] != "representation" or row["untrained_baseline"]:
            return np.nan
        here = baselines[baselines["data"] == row["data"]]
        same = here[here["encoder"] == row["encoder"]]
        chosen = same if len(same) == 1 else here if len(here) == 1 else None
        return float(chosen["mean"].iloc[0]) if chosen is not None else np.nan

    return table.apply(lookup, axis=1)


def shared_by(diagnostics: dict, wall_s: float) -> int:
    """How many cells a cell's times are shared among: its training group's size, or its unit's (a unit's
    wall time is split evenly and the whole is kept as `group_wall_s`); 1 for a cell that ran alone."""
    if diagnostics.get("group_size"):
        return int(diagnostics["group_size"])
    if diagnostics.get("group_wall_s") and wall_s > 0:
        return round(diagnostics["group_wall_s"] / wall_s)
    return 1


def ci_halfwidth(values: np.ndarray, level: float = 0.95) -> float:
    """Half-width of the t confidence interval of the mean over seeds."""
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
