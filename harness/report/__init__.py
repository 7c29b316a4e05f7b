"""Reports read the store (and the registered tasks, for their PMI profiles): results.csv, summary tables, figures,
index.md and index.html."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from harness import metrics
from harness.paths import DEFAULT_REPORTS, inside
from harness.report import figures, pmi
from harness.report.section import Section
from harness.store import Store

SUMMARY_COLUMNS = {
    "estimation": ["method", "data", "n", "true", "mean", "bias", "std", "mse", "ci95", "interval", "covered", "seeds",
                   "failures", "flags"],
    "representation": ["method", "data", "true", "mean", "std", "as_published", "optimism", "inner_cv", "best_on_test",
                       "untrained", "probe_std", "seeds", "failures"],
}
TIMING_COLUMNS = ["method", "data", "device", "shared_by", "wall_s", "steps_per_s", "kernel_ms", "peak_mem_mb"]
TIMING_HEADING = "Timing"
TIMING_NOTE = ("Means per cell over seeds: `wall_s` in s; `steps_per_s` and `kernel_ms` (the training steps' "
               "total time in ms) from CUDA events on GPU, perf_counter on CPU; `peak_mem_mb` in MB.")
SHARED_NOTE = ("**Shared times.** A number under `shared_by` marks a row whose cells trained as one batched model "
               "with that many cells: its `wall_s` and `kernel_ms` are the group's time divided evenly among them "
               "(the group took `shared_by` times as long), not what one cell takes alone; `steps_per_s` counts "
               "each cell's steps against its share, and `peak_mem_mb` is the whole group's. "
               "An empty `shared_by`: the cells ran alone.")
HEADINGS = {
    "estimation": "Estimates against ground truth (nats; statistics over seeds)",
    "representation": "Downstream accuracy (%)",
}
REPRESENTATION_NOTE = (
    "Means over pretraining seeds, three selections from each training run. `fixed`: the model fixed in advance "
    "(the cell's estimate; `std` over seeds). `as_published`: the checkpoint the paper's own code would pick, "
    "beside the paper's number (`paper`); where that is the best checkpoint on the test items it is optimistic, "
    "and `optimism` = as_published - fixed is what that selection adds. `inner_cv`: per fold, the checkpoint "
    "best by cross-validation on the training items alone. `best_on_test`: the checkpoint best on the test "
    "items (optimistic). `untrained`: the same architecture at random initialisation. `probe_std`: the mean "
    "spread over classifier repeats or folds. Blank: the encoder kept no checkpoints.")

# (file, heading, figure) in the page's order: the estimation figures after their table
ESTIMATION_FIGURES = [
    ("estimate_vs_truth.png", "Estimate against truth", lambda cells, summary: figures.estimate_vs_truth(summary)),
    ("bias_variance.png", "Bias against spread", lambda cells, summary: figures.bias_variance(summary)),
    ("error_heatmap.png", "Relative error per estimator and task",
     lambda cells, summary: figures.error_heatmap(summary)),
    ("trajectories.png", "Estimates over training", lambda cells, summary: figures.trajectories(cells)),
]
REPRESENTATION_FIGURES = [
    ("training_curves.png", "Encoders' objectives over training", lambda cells, summary: figures.training_curves(cells)),
]


def build(store: Store, run: str, out_root: str | Path = DEFAULT_REPORTS) -> Path:
    cells = store.cells(run)
    suite = cells["suite"].iloc[0] if len(cells) else store.runs().set_index("run").loc[run, "suite"]
    out = inside(out_root, str(suite), str(run))  # a name from a foreign store must not lead out of out_root
    out.mkdir(parents=True, exist_ok=True)
    metrics.export_frame(cells).to_csv(out / "results.csv", index=False)
    summary = metrics.summarise(cells)
    summary.to_csv(out / "summary.csv", index=False)

    sections: list[Section] = []
    for kind, heading in HEADINGS.items():
        table = summary[summary["kind"] == kind] if len(summary) else summary
        if not table.empty:
            shown = table[SUMMARY_COLUMNS[kind]]
            if kind == "representation":
                shown = shown.rename(columns={"true": "paper", "mean": "fixed"})
                sections.append(Section(heading, shown, REPRESENTATION_NOTE))
            else:
                sections.append(Section(heading, shown))
        plots = ESTIMATION_FIGURES if kind == "estimation" else REPRESENTATION_FIGURES
        for filename, title, draw in plots:
            drawn = draw(cells, summary) if not table.empty else None
            if drawn is not None:
                drawn.save(out / filename)
                sections.append(Section(title, caption=drawn.caption, image=out / filename))
    sections += reliability_sections(cells)
    sections += pmi.bracket_sections(cells, out)
    sections += pmi.pmi_sections(cells, out)
    if len(summary):
        sections.append(Section(TIMING_HEADING, *timing_table(summary)))
    fell_back = cells[cells["diagnostics"].map(lambda d: "group_fallback" in d)]
    if not fell_back.empty:
        sections.append(Section("Cells that ran alone after their group failed as a whole",
                                fell_back[["method_label", "data_label", "seed", "status"]].assign(
                                    reason=fell_back["diagnostics"].map(lambda d: d["group_fallback"]))))
    failed = cells[cells["status"] != "ok"]
    if not failed.empty:
        sections.append(Section("Cells that did not finish cleanly",
                                failed[["method_label", "data_label", "seed", "status", "error"]]))

    title = f"mi-harness report: suite {suite}, run {run}"
    (out / "index.md").write_text(render_markdown(title, cells, sections, out))
    (out / "index.html").write_text(render_html(title, cells, sections, out))
    return out


SELECTION_NOTE = ("Per seed, `selected` is the configuration of the [select] grid whose criterion (computed without the "
                  "truth: a validation-split bound, a held-out likelihood) was highest, and the estimates above are "
                  "its; `oracle` is the one closest to the truth, as benchmarks that tune on the truth report "
                  "(optimistic). Errors are mean absolute errors over seeds, in nats; `gap` = selected - oracle.")
COVERAGE_NOTE = ("The share of cells whose own 95% interval (from one fit: held-out resampling for critics, the "
                 "estimator's variance or half-sampling for the others) contains the truth. The interval does not "
                 "include the bias of a bound, so a biased estimator under-covers; the estimates table's `ci95` is "
                 "the spread over seeds.")
FLAGS_NOTE = ("Each flag once per estimator, with one of its cells' sentences; `cells` counts the cells that carry "
              "it. `not_converged` compares a seed with the best seed of its configuration (Beyond Normal's rule).")


def reliability_sections(cells: pd.DataFrame) -> list[Section]:
    """Selection without the truth, interval coverage and the sanity flags, where the run has any."""
    sections: list[Section] = []
    selection = metrics.selection_summary(cells)
    if not selection.empty:
        sections.append(Section("Selection without the truth", selection, SELECTION_NOTE))
    kept = metrics.apply_selection(cells)  # a [select] grid's chosen configurations, as in the estimates table
    covered = metrics.coverage(kept)
    if not covered.empty:
        sections.append(Section("Interval coverage", covered, COVERAGE_NOTE))
    flagged = metrics.with_seed_flags(kept)
    rows = [{"method": r.method_label, "flag": name, "sentence": text}
            for r in flagged.itertuples() for name, text in r.flags.items()]
    if rows:
        table = pd.DataFrame(rows)
        table = (table.groupby(["method", "flag"], sort=False)
                 .agg(cells=("sentence", "size"), example=("sentence", "first")).reset_index())
        sections.append(Section("Sanity flags", table, FLAGS_NOTE))
    return sections


def timing_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The timing table and its note, which says so when some rows' times are a group's shared among its cells.

    `shared_by` is left empty for cells that ran alone, so the shared rows stand out.
    """
    table = summary.reindex(columns=TIMING_COLUMNS).copy()
    sizes = table["shared_by"].fillna(1).astype(int)
    table["shared_by"] = sizes.map(lambda size: str(size) if size > 1 else "")
    return table, TIMING_NOTE + (" " + SHARED_NOTE if (sizes > 1).any() else "")


def overview(cells: pd.DataFrame) -> str:
    counts = cells["status"].value_counts().to_dict()
    devices = ", ".join(sorted(cells["device"].unique()))
    return (f"{len(cells)} cells ({', '.join(f'{n} {s}' for s, n in counts.items())}); device {devices}; "
            f"total wall time {cells['wall_s'].sum():.1f} s.")


def render_markdown(title: str, cells: pd.DataFrame, sections: list[Section], out: Path) -> str:
    """The page in markdown; its figures are linked by their paths under `out`, where the page lies."""
    parts = [f"# {title}", "", overview(cells), ""]
    for section in sections:
        parts += [f"{'#' * section.level} {section.heading}", ""]
        if section.table is not None:
            parts += [_markdown_table(section.table), ""]
        if section.image is not None:
            parts += [f"![{section.heading}]({_relative(section.image, out)})", ""]
        if section.links:
            parts += [*(f"- [{_bracketed(label)}]({_relative(path, out)})" for label, path in section.links), ""]
        if section.caption:
            parts += [section.caption, ""]
    return "\n".join(parts)


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def _bracketed(label: str) -> str:
    """A label as markdown link text: its own square brackets escaped."""
    return re.sub(r"([\[\]])", r"\\\1", label)


def _markdown_table(table: pd.DataFrame) -> str:
    """Numbers to three decimals, missing values blank: a failed row reads empty, not 'nan'."""
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=".3f", missingval="")


def render_html(title: str, cells: pd.DataFrame, sections: list[Section], out: Path) -> str:
    """One page: figures embedded as base64 PNGs, but for those linked from it (files under `out`)."""
    contents = "".join(f'<li><a href="#s{i}">{html.escape(section.heading)}</a></li>'
                       for i, section in enumerate(sections) if section.level == 2)
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(overview(cells))}</p>",
            f"<nav><ol>{contents}</ol></nav>"]
    for i, section in enumerate(sections):
        heading, table, caption, image = section.heading, section.table, section.caption, section.image
        body.append(f'<h{section.level} id="s{i}">{html.escape(heading)}</h{section.level}>')
        if table is not None:
            rendered = table.to_html(index=False, border=0, classes="results", na_rep="", float_format="{:.3f}".format)
            body.append(f'<div class="scroll">{rendered}</div>')
        if image is not None:
            data = base64.b64encode(image.read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(heading)}">'
                        f"<figcaption>{_inline(caption or '')}</figcaption></figure>")
        if section.links:
            items = "".join(f'<li><a href="{html.escape(_relative(path, out))}">{html.escape(label)}</a></li>'
                            for label, path in section.links)
            body.append(f'<ul class="links">{items}</ul>')
        if image is None and caption:
            body.append(f'<p class="note">{_inline(caption)}</p>')
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "h2{margin-top:1.8em;border-bottom:1px solid #ccc}nav ol{columns:2;font-size:0.9em}"
             ".scroll{overflow-x:auto}table.results{border-collapse:collapse;font-size:0.85em}"
             "table.results td,table.results th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
             "table.results td:nth-child(-n+2),table.results th:nth-child(-n+2){text-align:left}"
             "table.results tbody tr:hover{background:#f4f6fa}"
             "img{max-width:100%}figure{margin:1em 0}figcaption,.note{color:#555;font-size:0.9em}"
             "ul.links{columns:3;font-size:0.9em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def _inline(text: str) -> str:
    """A note's markdown emphasis and code as HTML (the note is written once, for both pages)."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)
