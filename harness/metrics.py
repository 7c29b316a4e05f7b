"""Summary statistics over seeds: bias, variance, MSE, confidence intervals, failures, speed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["kind", "method_label", "data_label", "n"]


def export_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, the columns of `mi-harness export`."""
    return pd.DataFrame({
        "suite": cells["suite"], "cell": cells["key"], "kind": cells["kind"],
        "estimator": cells["method"], "label": cells["method_label"],
        "params": cells["method_params"].map(lambda p: json.dumps(p, sort_keys=True)),
        "task": cells["data"], "task_label": cells["data_label"],
        "task_params": cells["data_params"].map(lambda p: json.dumps(p, sort_keys=True)),
        "seed": cells["seed"], "n": cells["n"], "true_value": cells["true_value"],
        "true_stderr": cells["true_stderr"], "estimate": cells["estimate"], "status": cells["status"],
        "error": cells["error"], "wall_s": cells["wall_s"], "steps": cells["steps"],
        "kernel_ms": cells["kernel_ms"], "peak_mem_mb": cells["peak_mem_mb"], "device": cells["device"],
    })


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per method x data x sample size, statistics over the seeds that finished."""
    rows = []
    for (kind, method, data, n), group in cells.groupby(GROUP, sort=False):
        ok = group[group["status"] == "ok"]
        estimates = ok["estimate"].to_numpy(dtype=float)
        truth = ok["true_value"].astype(float).mean() if len(ok) else np.nan
        # Beyond-Normal's failure flags: a negative estimate, or one below 10% of the best seed's
        flagged = int(((estimates < 0) | (estimates < 0.1 * estimates.max())).sum()) if (
            kind == "estimation" and len(estimates) and truth > 0) else 0
        seconds = ok["kernel_ms"].astype(float) / 1000.0
        row = {
            "kind": kind, "method": method, "data": data, "n": n,
            "seeds": len(ok), "failures": int(len(group) - len(ok)) + flagged,
            "true": truth,
            "mean": estimates.mean() if len(estimates) else np.nan,
            "std": estimates.std(ddof=1) if len(estimates) > 1 else np.nan,
            "ci95": ci_halfwidth(estimates),
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
            row["probe_std"] = ok["metrics"].map(lambda m: m.get("accuracy_std", np.nan)).mean()
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = {method: i for i, method in enumerate(dict.fromkeys(cells["method_label"]))}
    return (table.assign(_order=table["method"].map(order)).sort_values(["_order", "data", "true", "n"])
            .drop(columns="_order").reset_index(drop=True))


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
