"""Seaborn figures of a run, each saved as a PNG and returned with its caption."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


MAX_FAMILIES = 8  # a suite over dozens of tasks is read from the heatmap; its curves would be a wall


def trajectories(cells: pd.DataFrame, path: Path) -> str | None:
    """Estimate vs training step, one panel per estimator, levels of a task family end to end.

    With the staircase's levels as separate cells this redraws Poole et al.'s staircase figure:
    the true MI as black steps and each estimator's smoothed training curve across them.
    """
    estimation = cells[(cells["kind"] == "estimation") & (cells["status"] == "ok")]
    estimation = estimation[estimation["trajectory"].map(len) > 0]
    if estimation.empty:
        return None
    families = list(dict.fromkeys(estimation["data"]))[:MAX_FAMILIES]
    methods = list(dict.fromkeys(estimation["method_label"]))
    columns = min(len(methods), 5)
    panel_rows = math.ceil(len(methods) / columns)
    fig, axes = plt.subplots(len(families) * panel_rows, columns, squeeze=False,
                             figsize=(3.4 * columns, 2.9 * len(families) * panel_rows))
    palette = dict(zip(methods, sns.color_palette(n_colors=len(methods)), strict=True))
    for f, family in enumerate(families):
        family_rows = estimation[estimation["data"] == family]
        batch = json.loads(family_rows["budget"].iloc[0])["batch_size"]
        for m, method in enumerate(methods):
            ax = axes[f * panel_rows + m // columns, m % columns]
            rows = family_rows[family_rows["method_label"] == method]
            if rows.empty:
                ax.axis("off")
                continue
            # each estimator's own truth: an f-GAN row's D_f differs from the MI of the same task
            truth = rows.groupby("data_label")["true_value"].mean().sort_values()
            offsets = dict(zip(truth.index, np.cumsum([0] + [_steps(rows, lab) for lab in truth.index[:-1]]),
                               strict=True))
            top = max(truth.max(), math.log(batch)) * 1.15 + 0.5
            for label, value in truth.items():
                ax.hlines(value, offsets[label], offsets[label] + _steps(rows, label), colors="black", linewidth=2)
            if rows["true_value"].min() >= 0:  # the log B cap concerns MI estimates, not divergences
                ax.axhline(math.log(batch), color="grey", linestyle="--", linewidth=1)
            for label, group in rows.groupby("data_label"):
                curves = [np.array(t) for t in group["trajectory"]]
                length = min(len(c) for c in curves)
                mean = np.mean([c[:length, 1] for c in curves], axis=0)
                ax.plot(curves[0][:length, 0] + offsets[label], mean, color=palette[method], linewidth=1.2)
            ax.set_ylim(min(-1.0, truth.min() - 1), top)  # divergent excursions fall off the bottom
            ax.set_title(f"{method}\non {family}", fontsize=9)
            ax.set_xlabel("training step", fontsize=8)
            ax.set_ylabel("estimate (nats)" if m % columns == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
        for empty in range(len(methods), panel_rows * columns):
            axes[f * panel_rows + empty // columns, empty % columns].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return ("Estimate against training step (EMA span 200, mean over seeds): true value in black, log B dashed; "
            "a task's cells are laid end to end in order of their true value. The y-axis is clipped: "
            "divergent excursions leave the panel at the bottom."
            + (f" The first {MAX_FAMILIES} task families are drawn." if estimation["data"].nunique() > MAX_FAMILIES
               else ""))


def _steps(rows: pd.DataFrame, data_label: str) -> int:
    return max(t[-1][0] for t in rows[rows["data_label"] == data_label]["trajectory"])


BIAS_VARIANCE_LIMITS = (3.0, 3.0)  # nats: |bias| and std beyond these are drawn on the frame's edge


def bias_variance(summary: pd.DataFrame, path: Path) -> str | None:
    rows = summary[(summary["kind"] == "estimation") & summary["std"].notna()].copy()
    if rows.empty:
        return None
    max_bias, max_std = BIAS_VARIANCE_LIMITS
    off_scale = int(((rows["bias"].abs() > max_bias) | (rows["std"] > max_std)).sum())
    rows["bias"] = rows["bias"].clip(-max_bias, max_bias)
    rows["std"] = rows["std"].clip(upper=max_std)
    fig, ax = plt.subplots(figsize=(7, 5))
    many_tasks = rows["data"].nunique() > 12  # a marker per task stops being readable; the heatmap has them
    sns.scatterplot(data=rows, x="bias", y="std", hue="method", style=None if many_tasks else "data", s=70,
                    alpha=0.8, ax=ax)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-max_bias * 1.05, max_bias * 1.05)
    ax.set_ylim(0, max_std * 1.05)
    ax.set_xlabel("bias (nats): mean estimate - truth")
    ax.set_ylabel("std over seeds (nats)")
    ax.set_title("Bias against spread, per estimator x task")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    clipped = f" {off_scale} group(s) beyond +-{max_bias} nats are drawn on the frame's edge." if off_scale else ""
    return "Bias against standard deviation over seeds; closer to (0, 0) is better." + clipped


def error_heatmap(summary: pd.DataFrame, path: Path) -> str | None:
    rows = summary[(summary["kind"] == "estimation") & (summary["true"].abs() > 1e-9)]
    if rows["data"].nunique() < 2:
        return None
    table = rows.assign(log_rel_error=np.log10((rows["mean"] - rows["true"]).abs() / rows["true"].abs() + 1e-6))
    grid = table.pivot_table(index="method", columns="data", values="log_rel_error", aggfunc="mean")
    grid = grid.reindex(index=sorted(grid.index, key=_natural), columns=sorted(grid.columns, key=_natural))
    tasks_down = grid.shape[1] > grid.shape[0]  # the longer side (often tasks, with long labels) runs down
    if tasks_down:
        grid = grid.T
    longest = max(len(str(label)) for label in grid.index)
    fig, ax = plt.subplots(figsize=(2.5 + 0.07 * longest + 0.75 * grid.shape[1], 1.5 + 0.32 * grid.shape[0]))
    sns.heatmap(grid, annot=True, fmt=".1f", cmap="rocket_r", vmin=-3, vmax=0.5, ax=ax,
                annot_kws={"fontsize": 8}, cbar_kws={"label": "log10 |relative error|", "shrink": 0.6})
    for row, column in zip(*np.nonzero(grid.isna().to_numpy()), strict=True):  # no seed finished cleanly
        ax.text(column + 0.5, row + 0.5, "n/a", ha="center", va="center", fontsize=7, color="grey")
    ax.set_xlabel("estimator" if tasks_down else "task")
    ax.set_ylabel("task" if tasks_down else "estimator")
    ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    ax.tick_params(axis="y", labelsize=8, labelrotation=0)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_title("log10 relative error of the mean estimate")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "log10 of |mean - truth| / truth per estimator and task (-2 means 1% error; n/a: no seed finished)."


def _natural(label: object) -> list[object]:
    """Sort key that puts 'Normal 2x2' before 'Normal 25x25' (digits compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(label))]


def training_curves(cells: pd.DataFrame, path: Path) -> str | None:
    rows = cells[(cells["kind"] == "representation") & (cells["status"] == "ok")]
    rows = rows[rows["trajectory"].map(len) > 0]
    if rows.empty:
        return None
    long = pd.DataFrame([
        {"step": s, "value": v, "encoder": r.method_label, "dataset": r.data_label, "seed": r.seed}
        for r in rows.itertuples() for s, v in r.trajectory
    ])
    grid = sns.relplot(data=long, x="step", y="value", hue="encoder", col="dataset", kind="line",
                       col_wrap=min(3, long["dataset"].nunique()), height=3.2, aspect=1.3,
                       facet_kws={"sharey": False})
    grid.set_axis_labels("epoch / step", "objective's MI estimate (nats)")
    grid.figure.suptitle("Each encoder's MI estimate over training (mean and 95% band over seeds)", y=1.03)
    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)
    return "The MI estimate of each encoder's objective during training."
