"""Seaborn figures of a run: each function draws one figure and returns it as `Drawn` (or None when the
run has nothing to draw), so that the report saves it and tests read its axes instead of its pixels."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")

DPI = 110
MARGIN = 0.06  # share of an axis's span left free beyond the data on each side
DECADES = 2.0  # a positive quantity spanning this many powers of ten is drawn on a log scale
MAX_FAMILIES = 8  # a suite over dozens of tasks is read from the heatmap; its curves would be a wall
COLUMNS = 5  # panels per row in the per-estimator grids
CAP_GID = "cap"  # the gid of a drawn cap line, so tests can find it
CAP_CAPTION = ("; dashed, the most an estimator can report where it declares such a cap (e.g. log batch size), "
               "named in the panel's title instead when it lies above the panel")


@dataclass
class Drawn:
    """A drawn figure, its caption, its panels by estimator label (the first, where a figure has one panel per
    estimator and task family; by task label in the PMI profiles and the brackets) and the caps drawn per
    estimator label."""

    figure: Figure
    caption: str
    panels: dict[str, Axes] = field(default_factory=dict)
    caps: dict[str, list[float]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        self.figure.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(self.figure)


def spans_decades(values: Iterable[float]) -> bool:
    """True when positive values span DECADES powers of ten (and only positive values can be logged)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return len(v) > 1 and bool((v > 0).all()) and math.log10(v.max() / v.min()) >= DECADES


def limits(values: Iterable[float], log: bool = False, reference: float | None = None) -> tuple[float, float]:
    """Axis limits that hold every finite value with a margin (in log space on a log axis).

    A reference value (zero bias, zero spread) is included when it lies within one data span of the
    data: it anchors the eye without squeezing the points into a corner.
    """
    v = np.asarray([x for x in values if np.isfinite(x) and (x > 0 or not log)], dtype=float)
    if not len(v):
        return (0.1, 10.0) if log else (-1.0, 1.0)
    if log:
        lo, hi = np.log10(v.min()), np.log10(v.max())
        pad = max(hi - lo, 0.5) * MARGIN
        return 10 ** (lo - pad), 10 ** (hi + pad)
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo
    if reference is not None and min(abs(reference - lo), abs(reference - hi)) <= max(span, 1e-12):
        lo, hi = min(lo, reference), max(hi, reference)
        span = hi - lo
    pad = (span if span > 0 else max(abs(hi), 1.0)) * MARGIN
    return lo - pad, hi + pad


def _palette(labels: list[str]) -> dict[str, tuple[float, float, float]]:
    """Distinct colours per label: seaborn's ten, then evenly spaced hues (no colour twice)."""
    colours = sns.color_palette(n_colors=len(labels)) if len(labels) <= 10 else sns.color_palette("husl", len(labels))
    return dict(zip(labels, colours, strict=True))


def _grid(count: int, width: float = 3.4, height: float = 3.1, most: int = COLUMNS) -> tuple[Figure, np.ndarray]:
    """Panels in a near-square grid of at most `most` to a row; the unused ones switched off."""
    columns = min(math.ceil(math.sqrt(count)), most)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(width * columns, height * rows))
    for empty in axes.flat[count:]:
        empty.axis("off")
    return fig, axes


def _title(label: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def estimate_vs_truth(summary: pd.DataFrame) -> Drawn | None:
    """Mean estimate against the true value, one panel per estimator across its tasks.

    Error bars are the seeds' standard deviation; the identity line is a perfect estimator. An
    estimator that declares a cap on what it can report (a `cap_nats` diagnostic) gets it dashed.
    """
    rows = summary[summary["kind"] == "estimation"] if len(summary) else summary
    if rows.empty or not np.isfinite(rows["true"].astype(float)).any():
        return None
    methods = list(dict.fromkeys(rows["method"]))  # a panel for each, though no seed of it finished
    fig, axes = _grid(len(methods))
    x_log = spans_decades(rows["true"])
    sizes = sorted(rows["n"].unique())
    by_n = dict(zip(sizes, sns.color_palette("deep" if len(sizes) <= 10 else "husl", len(sizes)), strict=True))
    by_method = _palette(methods)  # one colour per estimator, as in the other figures, unless n varies
    panels: dict[str, Axes] = {}
    capped: dict[str, list[float]] = {}
    for ax, method in zip(axes.flat, methods, strict=False):
        panels[method] = ax
        own = rows[rows["method"] == method]
        done = own[np.isfinite(own["mean"].astype(float)) & np.isfinite(own["true"].astype(float))]
        ax.set_title(_title(method), fontsize=9)
        if done.empty:
            ax.text(0.5, 0.5, "no seed finished", transform=ax.transAxes, ha="center", color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        x_lim = limits(done["true"], log=x_log)  # each panel its own tasks: an f-GAN row's truths are its own
        spread = done["std"].fillna(0.0)
        for n in sizes:
            at_n = done[done["n"] == n]
            ax.errorbar(at_n["true"], at_n["mean"], yerr=spread[at_n.index], fmt="o", markersize=5, capsize=3,
                        color=by_n[n] if len(sizes) > 1 else by_method[method], label=f"n = {n}", alpha=0.9)
        caps = _caps(own)
        shown = [*x_lim, *(done["mean"] - spread), *(done["mean"] + spread)]
        y_log = x_log and spans_decades(shown)
        y_lim = limits(shown + _near(caps, shown), log=y_log)
        identity = np.geomspace(*x_lim, 50) if x_log else np.array(x_lim)
        ax.plot(identity, identity, color="black", linewidth=0.8, zorder=0)
        note = _draw_caps(ax, caps, y_lim)
        if caps:
            capped[method] = caps
        ax.set_xscale("log" if x_log else "linear")
        ax.set_yscale("log" if y_log else "linear")
        ax.set_xlim(*x_lim)
        ax.set_ylim(*y_lim)
        ax.set_title(_title(method) + note, fontsize=9)
        ax.set_xlabel("true value (nats)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean estimate (nats)", fontsize=8)
    if len(sizes) > 1:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    caption = ("Mean estimate over seeds against the true value, one panel per estimator; error bars are the "
               "seeds' standard deviation, the solid line is estimate = truth")
    if _caps(rows):
        caption += CAP_CAPTION
    return Drawn(fig, caption + ". The axes fit each panel's points.", panels, capped)


def _caps(rows: pd.DataFrame) -> list[float]:
    """The caps the rows' estimator declared (summaries written before the column existed have none)."""
    return sorted(rows["cap_nats"].dropna().unique()) if "cap_nats" in rows else []


def _near(caps: list[float], values: Iterable[float]) -> list[float]:
    """The caps worth stretching an axis for: within the values' range or half a span above it. One far
    above the data would squeeze the points into the bottom of the panel; it is noted instead."""
    v = [x for x in values if np.isfinite(x)]
    if not v:
        return caps
    lo, hi = min(v), max(v)
    return [cap for cap in caps if cap <= hi + 0.5 * max(hi - lo, 0.5)]


def _draw_caps(ax: Axes, caps: list[float], y_lim: tuple[float, float]) -> str:
    """Each cap in view as a dashed line; the note for the panel's title of those above it."""
    above = []
    for cap in caps:
        if y_lim[0] <= cap <= y_lim[1]:
            ax.axhline(cap, color="grey", linestyle="--", linewidth=1, gid=CAP_GID)
        else:
            above.append(f"{cap:.2f}")
    return f"\n(cap {', '.join(above)} nats: above the panel)" if above else ""


def trajectories(cells: pd.DataFrame) -> Drawn | None:
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
    columns = min(len(methods), COLUMNS)
    panel_rows = math.ceil(len(methods) / columns)
    fig, axes = plt.subplots(len(families) * panel_rows, columns, squeeze=False,
                             figsize=(3.4 * columns, 2.9 * len(families) * panel_rows))
    # colours keyed on every estimator of the run, in the summary's order, as the other figures are
    palette = _palette(list(dict.fromkeys(cells.loc[cells["kind"] == "estimation", "method_label"])))
    panels: dict[str, Axes] = {}
    capped: dict[str, list[float]] = {}
    for f, family in enumerate(families):
        family_rows = estimation[estimation["data"] == family]
        for m, method in enumerate(methods):
            ax = axes[f * panel_rows + m // columns, m % columns]
            rows = family_rows[family_rows["method_label"] == method]
            if rows.empty:
                ax.axis("off")
                continue
            panels.setdefault(method, ax)
            # each estimator's own truth: an f-GAN row's D_f differs from the MI of the same task
            truth = rows.groupby("data_label")["true_value"].mean().sort_values()
            offsets = dict(zip(truth.index, np.cumsum([0] + [_steps(rows, lab) for lab in truth.index[:-1]]),
                               strict=True))
            for label, value in truth.items():
                ax.hlines(value, offsets[label], offsets[label] + _steps(rows, label), colors="black", linewidth=2)
            caps = sorted({d["cap_nats"] for d in rows["diagnostics"] if d.get("cap_nats") is not None})
            drawn = []
            for label, group in rows.groupby("data_label"):
                curves = [np.array(t) for t in group["trajectory"]]
                length = min(len(c) for c in curves)
                mean = np.mean([c[:length, 1] for c in curves], axis=0)
                ax.plot(curves[0][:length, 0] + offsets[label], mean, color=palette[method], linewidth=1.2)
                drawn.append(mean)
            values = np.concatenate(drawn)
            values = values[np.isfinite(values)]
            # every truth and the bulk of the curves (and a cap near them): divergent excursions leave the panel
            shown = [*truth, *(np.quantile(values, [0.02, 0.99]) if len(values) else [])]
            y_lim = limits([*shown, *_near(caps, shown)])
            ax.set_ylim(*y_lim)
            note = _draw_caps(ax, caps, y_lim)
            if caps:
                capped[method] = caps
            ax.set_title(f"{_title(method)}\non {family}{note}", fontsize=9)
            ax.set_xlabel("training step", fontsize=8)
            ax.set_ylabel("estimate (nats)" if m % columns == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
        for empty in range(len(methods), panel_rows * columns):
            axes[f * panel_rows + empty // columns, empty % columns].axis("off")
    fig.tight_layout()
    caption = ("Estimate against training step (EMA span 200, mean over seeds): true value in black"
               + (CAP_CAPTION if capped else "")
               + "; a task's cells are laid end to end in order of their true value. The y-axis holds the truths "
               "and the curves but for their lowest 2% and highest 1% of points: divergent excursions leave the "
               "panel.")
    if estimation["data"].nunique() > MAX_FAMILIES:
        caption += f" The first {MAX_FAMILIES} task families are drawn."
    return Drawn(fig, caption, panels, capped)


def _steps(rows: pd.DataFrame, data_label: str) -> int:
    return max(t[-1][0] for t in rows[rows["data_label"] == data_label]["trajectory"])


def bias_variance(summary: pd.DataFrame) -> Drawn | None:
    rows = summary[(summary["kind"] == "estimation") & summary["std"].notna() & summary["bias"].notna()]
    rows = rows[np.isfinite(rows["bias"].astype(float)) & np.isfinite(rows["std"].astype(float))]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    many_tasks = rows["data"].nunique() > 12  # a marker per task stops being readable; the heatmap has them
    sns.scatterplot(data=rows, x="bias", y="std", hue="method", style=None if many_tasks else "data", s=70,
                    alpha=0.8, ax=ax, palette=_palette(list(dict.fromkeys(rows["method"]))))
    y_log = spans_decades(rows["std"])
    ax.axvline(0, color="black", linewidth=0.8, zorder=0)
    ax.set_yscale("log" if y_log else "linear")
    ax.set_xlim(*limits(rows["bias"], reference=0.0))
    ax.set_ylim(*limits(rows["std"], log=y_log, reference=None if y_log else 0.0))
    ax.set_xlabel("bias (nats): mean estimate - truth")
    ax.set_ylabel("std over seeds (nats" + (", log scale)" if y_log else ")"))
    ax.set_title("Bias against spread, per estimator x task")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return Drawn(fig, "Bias against standard deviation over seeds, one point per estimator x task; closer to "
                      "(0, 0) is better. The axes fit the points" + (" (spread on a log scale)." if y_log else "."))


def error_heatmap(summary: pd.DataFrame) -> Drawn | None:
    # a truth of 0 has no relative error; a row with no seed finished (no truth either) stays, as n/a
    rows = summary[(summary["kind"] == "estimation") & ~(summary["true"].abs() <= 1e-9)]
    if rows["data"].nunique() < 2:
        return None
    table = rows.assign(log_rel_error=np.log10((rows["mean"] - rows["true"]).abs() / rows["true"].abs() + 1e-6))
    grid = table.pivot_table(index="method", columns="data", values="log_rel_error", aggfunc="mean", dropna=False)
    grid = grid.reindex(index=sorted(grid.index, key=natural), columns=sorted(grid.columns, key=natural))
    tasks_down = grid.shape[1] > grid.shape[0]  # the longer side (often tasks, with long labels) runs down
    if tasks_down:
        grid = grid.T
    longest_row = max(len(str(label)) for label in grid.index)
    longest_column = max(len(str(label)) for label in grid.columns)
    # The grid is at least 2 in tall so the colour bar beside it can hold its label; the rotated
    # column labels get their own room below it.
    fig, ax = plt.subplots(figsize=(2.8 + 0.07 * longest_row + 0.75 * grid.shape[1],
                                    1.0 + max(0.32 * grid.shape[0], 2.0) + 0.045 * longest_column))
    ax.set_facecolor("#eeeeee")  # the n/a cells
    sns.heatmap(grid, annot=True, fmt=".1f", cmap="rocket_r", vmin=-3, vmax=0.5, ax=ax,
                annot_kws={"fontsize": 8},
                cbar_kws={"label": "log10 |relative error|", "pad": 0.02, "fraction": 0.05, "ticks": [-3, -2, -1, 0]})
    ax.collections[0].colorbar.ax.yaxis.label.set_size(9)
    ax.grid(False)
    for row, column in zip(*np.nonzero(grid.isna().to_numpy()), strict=True):  # no seed finished cleanly
        ax.text(column + 0.5, row + 0.5, "n/a", ha="center", va="center", fontsize=7, color="grey")
    ax.set_xlabel("estimator" if tasks_down else "task")
    ax.set_ylabel("task" if tasks_down else "estimator")
    ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    ax.tick_params(axis="y", labelsize=8, labelrotation=0)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_title("log10 relative error of the mean estimate")
    fig.tight_layout()
    return Drawn(fig, "log10 of |mean - truth| / |truth| per estimator and task (-2 means 1% error; the colours "
                      "stop at -3 and 0.5; n/a: no seed finished).")


def natural(label: object) -> list[object]:
    """Sort key that puts 'Normal 2x2' before 'Normal 25x25' (digits compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(label))]


def training_curves(cells: pd.DataFrame) -> Drawn | None:
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
    return Drawn(grid.figure, "The MI estimate of each encoder's objective during training.")


PROFILE_QUANTILES = (0.005, 0.995)  # the histograms' range: a heavy tail's few extreme pairs would flatten the bulk


def pmi_profiles(profiles: dict[str, np.ndarray]) -> Drawn | None:
    """The histogram of each task's PMI samples, one panel per task: the mean (the MI) as a line, the sd in
    the title."""
    if not profiles:
        return None
    fig, axes = _grid(len(profiles), width=3.1, height=2.5)
    panels: dict[str, Axes] = {}
    for ax, (task, values) in zip(axes.flat, profiles.items(), strict=False):
        panels[task] = ax
        low, high = np.quantile(values, PROFILE_QUANTILES)
        ax.hist(values, bins=60, range=(low, high) if high > low else None, color="#7a9cc6", edgecolor="none")
        ax.axvline(values.mean(), color="black", linewidth=1.2)
        ax.set_title(f"{_title(task)}\nmean {values.mean():.2f}, sd {values.std():.2f} nats", fontsize=9)
        ax.set_xlabel("PMI (nats)", fontsize=8)
        ax.set_yticks([])  # the counts say nothing: the shape does
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    low, high = (f"{100 * q:g}%" for q in PROFILE_QUANTILES)
    return Drawn(fig, f"Histogram of the pointwise MI log p(x, y) / (p(x) p(y)) at pairs drawn from each task's joint; "
                      f"the line is its mean, the task's MI. The histograms span the samples' {low} to {high} "
                      f"quantiles; the sd in the title is over all of them.", panels)


def pmi_scatter(task: str, cells: pd.DataFrame, methods: list[str]) -> Drawn:
    """Learned against true PMI on one task, one panel per estimator (one cell each), with the identity line;
    coloured as the other figures, keyed on every estimator of the run (`methods`)."""
    palette = _palette(methods)
    fig, axes = _grid(len(cells), width=3.0, height=3.0)
    panels: dict[str, Axes] = {}
    for ax, cell in zip(axes.flat, cells.itertuples(), strict=False):
        panels[cell.method_label] = ax
        pairs = np.asarray(cell.diagnostics["pmi_pairs"], dtype=float)
        lim = limits(pairs.ravel())  # one range for both axes, so the identity is the diagonal
        ax.plot(lim, lim, color="black", linewidth=0.8, zorder=1)  # above the grid, below the points
        ax.scatter(pairs[:, 0], pairs[:, 1], s=8, alpha=0.5, color=palette[cell.method_label], edgecolor="none")
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_aspect("equal")
        ax.set_title(f"{_title(cell.method_label)}\nRMSE {cell.metrics['pmi_rmse']:.2f} nats (seed {cell.seed})",
                     fontsize=9)
        ax.set_xlabel("true PMI (nats)", fontsize=8)
        ax.set_ylabel("learned PMI (nats)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(task, fontsize=11)
    fig.tight_layout()
    return Drawn(fig, f"{task}: the learned PMI against the true one at held-out pairs (up to 200), one cell per "
                      "estimator (its lowest seed); the line is learned = true, and RMSE is the cell's over all its "
                      "held-out pairs.", panels)


BOUND_COLOURS = {"lower": "#4c72b0", "estimate": "#8c8c8c", "upper": "#c44e52"}
TICK_WIDTH = 30  # characters per line of an estimator's label under the brackets' panels


def brackets(points: pd.DataFrame) -> Drawn | None:
    """Each estimator's mean over seeds (min to max as the bar) coloured by the side of the truth it bounds,
    one panel per task with its truth as a line. `points`: one row per panel and method with its bound,
    mean, low, high and the panel's truth."""
    if points.empty:
        return None
    first = {method: i for i, method in enumerate(dict.fromkeys(points["method"]))}
    bounds = points.drop_duplicates("method").set_index("method")["bound"]
    methods = sorted(first, key=lambda m: (list(BOUND_COLOURS).index(bounds[m]), first[m]))  # lower, then upper
    position = {method: i for i, method in enumerate(methods)}
    tasks = list(dict.fromkeys(points["panel"]))
    labels = [_title(method, TICK_WIDTH) for method in methods]
    longest = max(len(line) for label in labels for line in label.splitlines())
    width = 1.4 + 0.36 * len(methods)
    fig, axes = _grid(len(tasks), width=width, height=2.6 + 0.06 * longest,
                      most=max(1, min(COLUMNS, int(18 // width))))
    panels: dict[str, Axes] = {}
    for ax, task in zip(axes.flat, tasks, strict=False):
        panels[task] = ax
        own = points[points["panel"] == task]
        truth = float(own["truth"].iloc[0])
        ax.axhline(truth, color="black", linewidth=1.2, zorder=1)  # above the grid, which may share its y
        for bound, colour in BOUND_COLOURS.items():
            side = own[own["bound"] == bound]
            if side.empty:
                continue
            ax.errorbar(side["method"].map(position), side["mean"],
                        yerr=[side["mean"] - side["low"], side["high"] - side["mean"]],
                        fmt="o", markersize=5, capsize=3, color=colour)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(*limits([truth, *own["low"], *own["high"]]))
        ax.set_title(_title(task), fontsize=9)
        ax.set_ylabel("estimate (nats)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="x", visible=False)
    present = [bound for bound in BOUND_COLOURS if bound in set(bounds)]
    axes.flat[0].legend(handles=[Line2D([], [], color="black", linewidth=1.2, label="truth"),
                                 *(Line2D([], [], marker="o", linestyle="", color=BOUND_COLOURS[b], label=b)
                                   for b in present)], fontsize=7, loc="best")
    fig.tight_layout()
    return Drawn(fig, "Each estimator's mean estimate over seeds (the bar: its lowest to highest seed) against the "
                      "truth (the line), coloured by the side of the truth its value lies on by construction: lower "
                      "bounds should sit below the line, upper bounds above it, estimates anywhere.", panels)
