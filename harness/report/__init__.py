"""Reports read only the store: results.csv, summary tables, figures, index.md and index.html."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from harness import metrics
from harness.paths import DEFAULT_REPORTS
from harness.report import figures
from harness.store import Store

SUMMARY_COLUMNS = {
    "estimation": ["method", "data", "n", "true", "mean", "bias", "std", "mse", "ci95", "seeds", "failures"],
    "representation": ["method", "data", "true", "mean", "std", "probe_std", "seeds", "failures"],
}
TIMING_COLUMNS = ["method", "data", "device", "wall_s", "steps_per_s", "kernel_ms", "peak_mem_mb"]
TIMING_HEADING = ("Timing (means per cell: wall time in s; training steps per second and total step time in ms, "
                  "from CUDA events on GPU or perf_counter on CPU; peak memory in MB)")
HEADINGS = {
    "estimation": "Estimates against ground truth (nats; statistics over seeds)",
    "representation": "Downstream accuracy (%; `paper` is the published number where one exists, std over "
                      "pretraining seeds, probe_std the mean spread over classifier repeats or folds)",
}


def build(store: Store, run: str, out_root: str | Path = DEFAULT_REPORTS) -> Path:
    cells = store.cells(run)
    suite = cells["suite"].iloc[0] if len(cells) else store.runs().set_index("run").loc[run, "suite"]
    out = Path(out_root) / suite / run
    out.mkdir(parents=True, exist_ok=True)
    metrics.export_frame(cells).to_csv(out / "results.csv", index=False)
    summary = metrics.summarise(cells)
    summary.to_csv(out / "summary.csv", index=False)

    sections: list[tuple[str, pd.DataFrame | None, str | None, Path | None]] = []
    for kind, heading in HEADINGS.items():
        table = summary[summary["kind"] == kind]
        if not table.empty:
            shown = table[SUMMARY_COLUMNS[kind]]
            if kind == "representation":
                shown = shown.rename(columns={"true": "paper", "mean": "accuracy"})
            sections.append((heading, shown, None, None))
    sections.append((TIMING_HEADING, summary[TIMING_COLUMNS], None, None))
    plots = [("trajectories.png", lambda p: figures.trajectories(cells, p)),
             ("bias_variance.png", lambda p: figures.bias_variance(summary, p)),
             ("error_heatmap.png", lambda p: figures.error_heatmap(summary, p)),
             ("training_curves.png", lambda p: figures.training_curves(cells, p))]
    for filename, draw in plots:
        caption = draw(out / filename)
        if caption:
            sections.append((filename.removesuffix(".png").replace("_", " ").capitalize(), None, caption, out / filename))
    fell_back = cells[cells["diagnostics"].map(lambda d: "group_fallback" in d)]
    if not fell_back.empty:
        sections.append(("Cells that ran alone after their group failed as a whole",
                         fell_back[["method_label", "data_label", "seed", "status"]].assign(
                             reason=fell_back["diagnostics"].map(lambda d: d["group_fallback"])), None, None))
    failed = cells[cells["status"] != "ok"]
    if not failed.empty:
        sections.append(("Cells that did not finish cleanly",
                         failed[["method_label", "data_label", "seed", "status", "error"]], None, None))

    title = f"mi-harness report: suite {suite}, run {run}"
    (out / "index.md").write_text(render_markdown(title, cells, sections))
    (out / "index.html").write_text(render_html(title, cells, sections))
    return out


def overview(cells: pd.DataFrame) -> str:
    counts = cells["status"].value_counts().to_dict()
    devices = ", ".join(sorted(cells["device"].unique()))
    return (f"{len(cells)} cells ({', '.join(f'{n} {s}' for s, n in counts.items())}); device {devices}; "
            f"total wall time {cells['wall_s'].sum():.1f} s.")


def render_markdown(title: str, cells: pd.DataFrame, sections) -> str:
    parts = [f"# {title}", "", overview(cells), ""]
    for heading, table, caption, image in sections:
        parts += [f"## {heading}", ""]
        if table is not None:
            parts += [table.to_markdown(index=False, floatfmt=".3f"), ""]
        if image is not None:
            parts += [f"![{heading}]({image.name})", "", caption or "", ""]
    return "\n".join(parts)


def render_html(title: str, cells: pd.DataFrame, sections) -> str:
    """One self-contained page: figures embedded as base64 PNGs."""
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(overview(cells))}</p>"]
    for heading, table, caption, image in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if table is not None:
            body.append(table.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0, classes="results"))
        if image is not None:
            data = base64.b64encode(image.read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(heading)}">'
                        f"<figcaption>{html.escape(caption or '')}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table.results{border-collapse:collapse;font-size:0.85em}"
             "table.results td,table.results th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
             "img{max-width:100%}figcaption{color:#555;font-size:0.9em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
