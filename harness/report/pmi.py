"""The report's Pointwise MI and Brackets sections: each task's PMI profile, how well the estimators that learn a
pointwise MI learned it, and where the bounds lie against the truth. They read the cells' data (the `pmi_rmse`
metric, the `pmi_pairs` and `bound` diagnostics), never an estimator's or a task's name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness import metrics
from harness.errors import UserError
from harness.python_api import pmi_profile
from harness.report import figures
from harness.report.section import Section

PROFILE_SAMPLES = 20_000
PROFILE_SEED = 0
MAX_EMBEDDED = 4  # tasks whose scatter figures the page embeds; beyond it, one figure per task is linked
SCATTER_FOLDER = "pmi"
PMI_HEADING = "Pointwise MI"
ACCURACY_HEADING = "Learned PMI accuracy"
SCATTER_HEADING = "Learned against true PMI"
BRACKETS_HEADING = "Brackets"
DEFAULT_BOUND = "estimate"  # estimators that declare no bound (the non-neural ones) may lie on either side

PROFILE_NOTE = ("The pointwise MI (PMI) of a task, log p(x, y) / (p(x) p(y)), varies from pair to pair around its "
                "mean, the MI; the wider its spread, the more the variance of DV/NWJ-type bounds (which average "
                "the exponential of a critic that should learn the PMI) grows, so a wide profile makes a task hard "
                f"for them whatever its MI. {PROFILE_SAMPLES} pairs per task, seed {PROFILE_SEED}.")
ACCURACY_NOTE = ("Mean over seeds of each cell's RMSE (nats) between the PMI its critic or density model learned and "
                 "the task's true PMI at held-out pairs; blank where an estimator learned none. `pmi_sd` is the spread "
                 "of the task's true PMI: a constant guess of the MI for every pair has an RMSE of about `pmi_sd`. "
                 "`lowest` names the estimator with the lowest RMSE.")
SCATTER_NOTE = ("One figure per task, one panel per estimator: the learned PMI against the true one at up to 200 "
                "held-out pairs of the estimator's lowest seed (at the largest n), the line learned = true.")
BRACKETS_NOTE = ("Per task, the highest mean over seeds among the lower bounds and the lowest among the upper bounds "
                 "(`lower_by`, `upper_by`: whose), and whether the truth lies between them (blank: the task lacks one "
                 "side). A lower bound above the truth, or an upper bound below it, is noise in the held-out value, "
                 "a bound that holds only for a well-fitted model or in expectation, or a bug.")


def pmi_sections(cells: pd.DataFrame, out: Path) -> list[Section]:
    """The profiles of the run's tasks, the learned PMI's accuracy table and its scatter plots; none when no
    cell learned a PMI."""
    learned = _learned(cells)
    if learned.empty:
        return []
    profiles = task_profiles(cells)
    drawn = figures.pmi_profiles(profiles)
    if drawn is None:
        profile = Section(PMI_HEADING, caption=PROFILE_NOTE)
    else:
        drawn.save(out / "pmi_profiles.png")
        profile = Section(PMI_HEADING, caption=f"{PROFILE_NOTE} {drawn.caption}", image=out / "pmi_profiles.png")
    accuracy = Section(ACCURACY_HEADING, accuracy_table(learned, profiles), ACCURACY_NOTE, level=3)
    return [profile, accuracy, *_scatter_sections(learned, cells, out)]


def _ok_estimates(cells: pd.DataFrame) -> pd.DataFrame:
    """The finished estimation cells a summary counts (a [select] grid's chosen configuration per seed)."""
    kept = metrics.apply_selection(cells)
    return kept[(kept["kind"] == "estimation") & (kept["status"] == "ok")]


def _learned(cells: pd.DataFrame) -> pd.DataFrame:
    ok = _ok_estimates(cells)
    return ok[ok["metrics"].map(lambda m: "pmi_rmse" in m)]


def task_profiles(cells: pd.DataFrame) -> dict[str, np.ndarray]:
    """PMI samples per task label, for the run's estimation tasks that know their PMI, in natural order."""
    tasks = cells[cells["kind"] == "estimation"].drop_duplicates("data_label")
    profiles = {}
    for task in sorted(tasks.itertuples(), key=lambda t: figures.natural(t.data_label)):
        values = _profile(task.data, task.data_params)
        if values is not None:
            profiles[task.data_label] = values
    return profiles


def _profile(name: str, params: dict) -> np.ndarray | None:
    try:
        values = pmi_profile(name, PROFILE_SAMPLES, PROFILE_SEED, **params)
    except (UserError, NotImplementedError):  # no known PMI, or a task no plugin of this process registers
        return None
    values = values[np.isfinite(values)]
    return values if len(values) else None


def accuracy_table(learned: pd.DataFrame, profiles: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per task x n: the true PMI's sd, the estimator with the lowest mean RMSE, and each one's."""
    rmse = learned.assign(rmse=learned["metrics"].map(lambda m: float(m["pmi_rmse"])))
    table = rmse.pivot_table(index=["data_label", "n"], columns="method_label", values="rmse", aggfunc="mean")
    table = table.reindex(columns=list(dict.fromkeys(learned["method_label"])))
    table = table.loc[sorted(table.index, key=lambda key: (figures.natural(key[0]), key[1]))]
    front = pd.DataFrame({
        "task": table.index.get_level_values(0), "n": table.index.get_level_values(1),
        "pmi_sd": [profiles[task].std() if task in profiles else np.nan for task, _ in table.index],
        "lowest": table.idxmin(axis=1).to_numpy(),
    })
    return pd.concat([front, table.reset_index(drop=True)], axis=1)


def _scatter_sections(learned: pd.DataFrame, cells: pd.DataFrame, out: Path) -> list[Section]:
    """Per task a figure of learned against true PMI in out/pmi/: embedded for a few tasks, else linked."""
    shown = learned[learned["diagnostics"].map(lambda d: bool(d.get("pmi_pairs")))]
    if shown.empty:
        return []
    # one cell per estimator x task: its lowest seed, at its largest sample size
    chosen = shown.sort_values(["seed", "n"], ascending=[True, False]).drop_duplicates(["data_label", "method_label"])
    methods = list(dict.fromkeys(cells.loc[cells["kind"] == "estimation", "method_label"]))
    tasks = sorted(chosen["data_label"].unique(), key=figures.natural)
    folder = out / SCATTER_FOLDER
    folder.mkdir(exist_ok=True)
    paths = {task: folder / name for task, name in file_names(tasks).items()}
    for task in tasks:
        own = chosen[chosen["data_label"] == task]
        own = own.iloc[np.argsort([methods.index(m) for m in own["method_label"]], kind="stable")]
        figures.pmi_scatter(task, own, methods).save(paths[task])
    if len(tasks) <= MAX_EMBEDDED:
        return [Section(f"{SCATTER_HEADING}: {task}", caption=SCATTER_NOTE, image=paths[task], level=3)
                for task in tasks]
    return [Section(SCATTER_HEADING, caption=SCATTER_NOTE, level=3, links=tuple(paths.items()))]


def file_names(labels: list[str]) -> dict[str, str]:
    """A distinct, filesystem-safe PNG name per label ('Normal 5x5 (sparse)' -> 'normal_5x5_sparse.png')."""
    names: dict[str, str] = {}
    for label in labels:
        stem = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:80] or "task"
        name, count = stem, 1
        while f"{name}.png" in names.values():
            count += 1
            name = f"{stem}_{count}"
        names[label] = f"{name}.png"
    return names


def bound_of(diagnostics: dict) -> str:
    return diagnostics.get("bound", DEFAULT_BOUND)


def bracket_sections(cells: pd.DataFrame, out: Path) -> list[Section]:
    """Where each estimator lies against the truth, coloured by its bound; only for a run with both a lower
    and an upper bound."""
    ok = _ok_estimates(cells)
    ok = ok[np.isfinite(ok["true_value"].astype(float)) & np.isfinite(ok["estimate"].astype(float))]
    if not {"lower", "upper"} <= set(ok["diagnostics"].map(bound_of)):
        return []
    points = bracket_points(ok)
    drawn = figures.brackets(points)
    drawn.save(out / "brackets.png")
    return [Section(BRACKETS_HEADING, bracket_table(points), f"{BRACKETS_NOTE} {drawn.caption}",
                    out / "brackets.png")]


def bracket_points(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per task x n x estimator: its bound, mean, lowest and highest estimate over seeds, and the
    task's truth; the panel is the task (with n where the run has several)."""
    several_n = ok["n"].nunique() > 1
    rows = []
    keys = sorted(ok.groupby(["data_label", "n"]).groups, key=lambda key: (figures.natural(key[0]), key[1]))
    for task, n in keys:
        panel = ok[(ok["data_label"] == task) & (ok["n"] == n)]
        truth = float(panel["true_value"].astype(float).mean())
        for method, group in panel.groupby("method_label", sort=False):
            estimates = group["estimate"].astype(float)
            rows.append({"panel": f"{task}, n = {n}" if several_n else task, "task": task, "n": n, "method": method,
                         "bound": bound_of(group["diagnostics"].iloc[0]), "mean": estimates.mean(),
                         "low": estimates.min(), "high": estimates.max(), "truth": truth})
    return pd.DataFrame(rows)


def bracket_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per task x n: the highest lower bound, the lowest upper bound, and whether the truth lies between."""
    rows = []
    for _, panel in points.groupby("panel", sort=False):
        lower = panel[panel["bound"] == "lower"]
        upper = panel[panel["bound"] == "upper"]
        best_lower = lower.loc[lower["mean"].idxmax()] if len(lower) else None
        best_upper = upper.loc[upper["mean"].idxmin()] if len(upper) else None
        truth = panel["truth"].iloc[0]
        rows.append({
            "task": panel["task"].iloc[0], "n": panel["n"].iloc[0], "true": truth,
            "highest_lower": np.nan if best_lower is None else best_lower["mean"],
            "lower_by": "" if best_lower is None else best_lower["method"],
            "lowest_upper": np.nan if best_upper is None else best_upper["mean"],
            "upper_by": "" if best_upper is None else best_upper["method"],
            "bracketed": ("" if best_lower is None or best_upper is None else
                          "yes" if best_lower["mean"] <= truth <= best_upper["mean"] else "no"),
        })
    return pd.DataFrame(rows)
