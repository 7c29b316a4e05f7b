"""`mi-harness compare BASE HEAD`: accuracy and speed changes between two runs, for CI.

Each side is a run in the store, `STORE.sqlite:RUN`, or a results.csv written by a report
(the committed reference reports). Rows are matched per method x task x n; the change in the
mean estimate is noise when it lies within `z` standard errors (from the seeds' spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import metrics
from harness.errors import UserError
from harness.store import Store

KEY = ["label", "task_label", "n"]


@dataclass(frozen=True)
class Thresholds:
    mse_ratio: float = 1.5       # worse when head MSE exceeds base MSE by this factor ...
    abs_error: float = 0.05      # ... and the mean moved by more than this many nats
    accuracy_points: float = 1.0  # encoders: worse when accuracy fell by more than this (and z s.e.)
    z: float = 3.0               # ... and by more than z standard errors of the difference
    speed_ratio: float = 1.5     # slower / faster beyond this factor (advisory unless fail_on_speed)
    fail_on_speed: bool = False


def load_side(operand: str, default_store: str) -> pd.DataFrame:
    path = Path(operand)
    if path.suffix == ".csv":
        if not path.is_file():
            raise UserError(f"{operand}: no such results file.")
        return pd.read_csv(path)
    store, _, run = operand.rpartition(":") if ".sqlite" in operand else (default_store, "", operand)
    return metrics.export_frame(Store(store, read_only=True).cells(run))


def per_group(frame: pd.DataFrame) -> pd.DataFrame:
    chosen = frame["selected"].fillna("") != "no" if "selected" in frame else True  # a [select] grid: its choice
    ok = frame[(frame["status"] == "ok") & chosen].copy()
    ok["sq_error"] = (ok["estimate"] - ok["true_value"]) ** 2
    steps = pd.to_numeric(ok["steps"], errors="coerce")
    # non-neural estimators take no steps (0) and time no kernel (None): no time per step to compare
    ok["seconds_per_step"] = pd.to_numeric(ok["kernel_ms"], errors="coerce") / 1000 / steps.where(steps > 0)
    grouped = ok.groupby(KEY, dropna=False)
    table = pd.DataFrame({
        "kind": grouped["kind"].first(), "true": grouped["true_value"].mean(),
        "mean": grouped["estimate"].mean(),
        "se": grouped["estimate"].std(ddof=1) / np.sqrt(grouped["estimate"].count()),
        "mse": grouped["sq_error"].mean(), "seeds": grouped["estimate"].count(),
        "wall_s": grouped["wall_s"].mean(), "s_per_step": grouped["seconds_per_step"].mean(),
    })
    failures = frame[frame["status"] != "ok"].groupby(KEY, dropna=False).size()
    table["failed"] = failures.reindex(table.index).fillna(0).astype(int)
    return table


def compare(base: pd.DataFrame, head: pd.DataFrame, limits: Thresholds) -> tuple[pd.DataFrame, bool]:
    """The per-group comparison and whether it fails CI."""
    b, h = per_group(base), per_group(head)
    joined = b.add_suffix("_base").join(h.add_suffix("_head"), how="outer")
    rows, failing = [], False
    for key, r in joined.iterrows():
        label, task, n = key
        if pd.isna(r["mean_base"]) or pd.isna(r["mean_head"]):
            mark = "new" if pd.isna(r["mean_base"]) else "missing"
            failing |= mark == "missing"
            rows.append({"method": label, "task": task, "n": n, "accuracy": mark})
            continue
        shift = r["mean_head"] - r["mean_base"]
        noise = limits.z * math.hypot(np.nan_to_num(r["se_base"]), np.nan_to_num(r["se_head"]))
        mse_ratio = (r["mse_head"] + 1e-12) / (r["mse_base"] + 1e-12)
        if r["kind_base"] == "representation":  # downstream accuracy: higher is better
            moved = abs(shift) > max(noise, limits.accuracy_points)
            accuracy = "within noise" if not moved else "better" if shift > 0 else "worse"
        elif abs(shift) <= max(noise, limits.abs_error):
            accuracy = "within noise"
        else:
            accuracy = ("worse" if mse_ratio > limits.mse_ratio else
                        "better" if mse_ratio < 1 / limits.mse_ratio else "changed, same MSE")
        failing |= accuracy == "worse"
        if r["failed_head"] > r["failed_base"]:
            accuracy, failing = "worse (more failed cells)", True
        speed = r["wall_s_base"] / r["wall_s_head"] if r["wall_s_head"] > 0 else math.nan
        speed_mark = ("faster" if speed > limits.speed_ratio else
                      "slower" if speed < 1 / limits.speed_ratio else "same")
        failing |= limits.fail_on_speed and speed_mark == "slower"
        rows.append({"method": label, "task": task, "n": n, "true": r["true_base"],
                     "mean_base": r["mean_base"], "mean_head": r["mean_head"], "shift": shift,
                     "noise": noise, "mse_ratio": mse_ratio, "accuracy": accuracy,
                     "speedup": speed, "speed": speed_mark})
    return pd.DataFrame(rows), failing


def render(table: pd.DataFrame, failing: bool, base: str, head: str, limits: Thresholds) -> str:
    counts = table["accuracy"].value_counts().to_dict()
    verdict = "**FAIL**: accuracy regressed beyond the thresholds" if failing else "**OK**: no accuracy regression"
    return "\n".join([
        f"## mi-harness compare: `{base}` -> `{head}`", "",
        f"{verdict}. Accuracy: " + ", ".join(f"{n} {mark}" for mark, n in counts.items()) + ".",
        f"Thresholds: worse = mean moved beyond max({limits.z} s.e., {limits.abs_error}) and MSE x{limits.mse_ratio}; "
        f"speed marks at x{limits.speed_ratio} ({'fails' if limits.fail_on_speed else 'advisory'}).", "",
        table.to_markdown(index=False, floatfmt=".3f"), "",
    ])
