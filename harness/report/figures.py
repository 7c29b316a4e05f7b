"""Seaborn figures of a run, each saved as a PNG and returned with its caption."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def trajectories(cells: pd.DataFrame, path: Path) -> str | None:
    """Estimate vs training step; cells of one task family are laid end to end by true value.

    With the staircase's levels as separate cells this redraws Poole et al.'s Fig. 2: the
    true MI as a staircase and each estimator's smoothed training curve across it.
    """
    estimation = cells[(cells["kind"] == "estimation") & (cells["status"] == "ok")]
    estimation = estimation[estimation["trajectory"].map(len) > 0]
    if estimation.empty:
        return None
    families = list(dict.fromkeys(estimation["data"]))
    fig, axes = plt.subplots(len(families), 1, figsize=(10, 3.6 * len(families)), squeeze=False)
    for ax, family in zip(axes[:, 0], families, strict=True):
        rows = estimation[estimation["data"] == family]
        levels = sorted(rows["data_label"].unique(), key=lambda lab: rows[rows["data_label"] == lab]["true_value"].mean())
        offset, spans = 0, {}
        for label in levels:
            steps = max(t[-1][0] for t in rows[rows["data_label"] == label]["trajectory"])
            spans[label] = offset
            truth = rows[rows["data_label"] == label]["true_value"].mean()
            ax.hlines(truth, offset, offset + steps, colors="black", linewidth=2, label="true" if offset == 0 else None)
            offset += steps
        palette = dict(zip(rows["method_label"].unique(), sns.color_palette(n_colors=rows["method_label"].nunique()),
                           strict=True))
        for (method, label), group in rows.groupby(["method_label", "data_label"]):
            curves = [np.array(t) for t in group["trajectory"]]
            length = min(len(c) for c in curves)
            mean = np.mean([c[:length, 1] for c in curves], axis=0)
            first = label == levels[0]
            ax.plot(curves[0][:length, 0] + spans[label], mean, color=palette[method], linewidth=1.2,
                    label=method if first else None)
        batch = json.loads(rows["budget"].iloc[0])["batch_size"]
        ax.axhline(math.log(batch), color="grey", linestyle="--", linewidth=1, label=f"log B = log {batch}")
        ax.set_title(f"{family}: estimate over training (EMA-smoothed, mean over seeds)")
        ax.set_xlabel("training step (levels laid end to end)")
        ax.set_ylabel("estimate (nats)")
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "Estimate against training step, with the true value (black) and the log B line."


def bias_variance(summary: pd.DataFrame, path: Path) -> str | None:
    rows = summary[(summary["kind"] == "estimation") & summary["std"].notna()]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.scatterplot(data=rows, x="bias", y="std", hue="method", style="data", s=70, ax=ax)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("bias (nats): mean estimate - truth")
    ax.set_ylabel("std over seeds (nats)")
    ax.set_title("Bias against spread, per estimator x task")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "Bias against standard deviation over seeds; closer to (0, 0) is better."


def error_heatmap(summary: pd.DataFrame, path: Path) -> str | None:
    rows = summary[(summary["kind"] == "estimation") & (summary["true"].abs() > 1e-9)]
    if rows["data"].nunique() < 2:
        return None
    table = rows.assign(log_rel_error=np.log10((rows["mean"] - rows["true"]).abs() / rows["true"].abs() + 1e-6))
    grid = table.pivot_table(index="method", columns="data", values="log_rel_error", aggfunc="mean", sort=False)
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
    ax.tick_params(axis="y", labelsize=8)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_title("log10 relative error of the mean estimate")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "log10 of |mean - truth| / truth per estimator and task (-2 means 1% error; n/a: no seed finished)."


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
