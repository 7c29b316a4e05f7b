"""`mi-harness list | runs | run | report | export | compare | refresh-reports`, and plugins' commands."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import catalogue, registry
from harness.catalogue import KINDS
from harness.dataroot import ENV_VAR as DATA_ROOT_VAR
from harness.errors import UserError
from harness.paths import DEFAULT_REPORTS, DEFAULT_STORE, STORE_VARIABLE, check_name

if TYPE_CHECKING:  # the store imports torch; listing must not
    from harness.store import Store

console = Console()
errors = Console(stderr=True)
STORE_OPTION = click.option("--store", envvar=STORE_VARIABLE, default=DEFAULT_STORE,
                            show_default=True, help=f"SQLite results store (env {STORE_VARIABLE}).")
FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
                             show_default=True, help="table for reading; json (one document on standard output) "
                             "or markdown (GitHub tables) for scripts and docs.")


def reports_folder(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """--reports-dir: a folder (made when missing), never an existing file; reports stay inside it."""
    if not value or "\x00" in value:
        raise UserError("--reports-dir is empty or holds a NUL character; give a folder such as 'reports'.")
    if Path(value).exists() and not Path(value).is_dir():
        raise UserError(f"--reports-dir {value} is a file, not a folder; give a folder such as 'reports'.")
    return value


REPORTS_OPTION = click.option("--reports-dir", default=DEFAULT_REPORTS, show_default=True, callback=reports_folder,
                              help="Folder that receives <suite>/<run>/ of each report.")


def folding_table(*headers: str, **options) -> Table:
    """A table that wraps long values instead of cutting them off (every choice stays readable)."""
    table = Table(*headers, **options)
    for column in table.columns:
        column.overflow = "fold"
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugin-file", "plugin_files", multiple=True, type=click.Path(),
              help="Load a single .py file of hook implementations (repeatable).")
@click.option("--data-root", type=click.Path(), help=f"Folder of real datasets (env {DATA_ROOT_VAR}).")
def cli(plugin_files: tuple[str, ...], data_root: str | None) -> None:
    """Benchmark and compare mutual-information estimators and MI-maximising encoders."""
    if data_root:
        os.environ[DATA_ROOT_VAR] = str(Path(data_root).resolve())
    for path in plugin_files:
        registry.load_plugin_file(path)
    for line in registry.problems():
        errors.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


@cli.command("list")
@click.argument("what", required=False, type=click.Choice([*KINDS, "plugins"]))
@click.argument("name", required=False)
@FORMAT_OPTION
def list_command(what: str | None, name: str | None, fmt: str) -> None:
    """Show installed estimators, tasks, encoders, datasets, suites or plugins; with NAME, that entry's whole page."""
    if what == "plugins":
        if name:
            raise UserError(f"`list plugins` takes no NAME (got {name!r}); `mi-harness list plugins` lists them all.")
        list_plugins(fmt)
    elif name:
        show_page(catalogue.entry(what, name), fmt)
    elif fmt == "json":
        click.echo(json.dumps(catalogue.entries(what) if what else catalogue.everything(), indent=1, default=str))
    elif fmt == "markdown":
        click.echo(catalogue.markdown(what), nl=False)
    else:
        for plural in [what] if what else list(KINDS):
            list_kind(plural)


def list_plugins(fmt: str) -> None:
    rows = registry.plugins()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    headers = ["plugin", "version", "hooks", "built-in", "status"]
    built_in = {True: "yes", False: ""}
    if fmt == "markdown":
        click.echo(catalogue.table(headers, [
            [catalogue.code(row["name"]), catalogue.text(row["version"]), " ".join(map(catalogue.code, row["hooks"])),
             built_in[row["builtin"]], catalogue.text(plugin_status(row))] for row in rows]), nl=False)
        return
    table = folding_table(*headers)
    for row in rows:
        table.add_row(escape(row["name"]), row["version"], ", ".join(row["hooks"]), built_in[row["builtin"]],
                      escape(plugin_status(row)))
    console.print(table)


def plugin_status(row: dict) -> str:
    return "ok" if row["status"] == "ok" else f"broken: {row['error']}"


def list_kind(plural: str) -> None:
    specs = registry.specs(KINDS[plural])
    if plural == "suites":
        table = folding_table("name", "summary", "file", title=f"suites ({len(specs)})", title_justify="left")
        for name, spec in sorted(specs.items()):
            table.add_row(escape(name), escape(spec.summary), escape(spec.path))
        console.print(table)
        return
    table = folding_table("name", "summary", "parameters (defaults, choices)", "cite", title=f"{plural} ({len(specs)})",
                          title_justify="left", show_lines=False)
    for name, spec in sorted(specs.items()):
        table.add_row(*(escape(text) for text in (name, spec.summary, spec.params.describe_fields(), spec.cite)))
    console.print(table)


def show_page(page: dict, fmt: str) -> None:
    """One entry's page: what it is, where it comes from, every parameter, what it was published at."""
    if fmt == "json":
        click.echo(json.dumps(page, indent=1, default=str))
        return
    if fmt == "markdown":
        click.echo(catalogue.markdown(page["kind"], page["name"]), nl=False)
        return
    say(f"[bold]{escape(page['name'])}[/]: {page['kind']} from plugin {escape(page['plugin'])}")
    say(escape(page["summary"]) or "(no summary)")
    if page["cite"]:
        say(f"cite: {escape(page['cite'])}")
    for where, (mean, std) in page.get("published", {}).items():
        say(f"published on {escape(where)}: {mean} ± {std}")
    if "file" in page:
        say(f"file: {escape(page['file'])}")
        say(f"seeds: {', '.join(map(str, page['seeds'])) or 'none'}")
        for section in catalogue.SUITE_SECTIONS:
            if section in page:
                say(f"{section}: {escape(', '.join(page[section]))}")
        return
    if not page["parameters"]:
        say("no parameters")
        return
    described = any(row["description"] for row in page["parameters"])
    table = folding_table("parameter", "type", "default", "choices", *["description"] * described)
    for row in page["parameters"]:
        table.add_row(*map(escape, (row["name"], row["type"], catalogue.default_text(row),
                                    " | ".join(map(repr, row["choices"])), *[row["description"]] * described)))
    console.print(table)


def say(line: str) -> None:
    """A line of rich markup, never highlighted nor wrapped (so names and summaries show as written)."""
    console.print(line, highlight=False, soft_wrap=True)


@cli.command()
@STORE_OPTION
@FORMAT_OPTION
def runs(store: str, fmt: str) -> None:
    """List the runs in the store, oldest first: cells ok / failed / non-finite, when started and last finished."""
    from harness.store import Store

    rows = Store(store, read_only=True).run_summaries()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    headers = ["run", "suite", "ok", "failed", "nonfinite", "started", "finished"]
    cells = [[str(row[header] if row[header] is not None else "") for header in headers] for row in rows]
    if fmt == "markdown":
        click.echo(catalogue.table(headers, [[catalogue.text(cell) for cell in row] for row in cells]), nl=False)
        return
    if not rows:
        console.print(f"no runs in {escape(store)} yet.", highlight=False)
        return
    table = folding_table(*headers[:5], "started (UTC)", "finished (UTC)", title=f"runs in {escape(store)} "
                          f"({len(rows)})", title_justify="left")
    for row in cells:
        table.add_row(*map(escape, row[:5]), *(time.replace("T", " ").removesuffix("+00:00") for time in row[5:]))
    console.print(table)


@cli.command()
@click.argument("suite")
@STORE_OPTION
@click.option("--run", "run_name", help="Name of this run in the store (default: the suite's name; a rerun resumes).")
@click.option("--jobs", "-j", default=1, show_default=True, help="Worker processes (one torch thread each).")
@click.option("--executor", default="local", show_default=True, help="local or ray.")
@click.option("--address", help="Ray cluster address (with --executor ray).")
@click.option("--device", help="Override the suite's device: cpu, cuda, cuda:N.")
@click.option("--retry-failed", is_flag=True, help="Run cells again that failed last time.")
@click.option("--group/--no-group", default=True, show_default=True,
              help="Train compatible cells (same critic architecture) as one batched model.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write the report afterwards.")
@REPORTS_OPTION
@click.option("--max-cells", type=click.IntRange(min=1), default=None,
              help="Refuse a suite whose grid has more cells than this (default 100000), before any work.")
def run(suite: str, store: str, run_name: str | None, jobs: int, executor: str, address: str | None,
        device: str | None, retry_failed: bool, group: bool, report: bool, reports_dir: str,
        max_cells: int | None) -> None:
    """Run a suite file (or a registered suite's name), resuming where a previous run stopped."""
    from harness import report as reporting
    from harness import runner
    from harness import suite as suites
    from harness.runner import make_executor
    from harness.store import Store

    if run_name is not None:
        check_name(run_name, "--run")
    loaded = suites.load(suite, device=device, max_cells=max_cells)
    results = Store(store)
    console.print(f"suite {loaded.name!r}: {len(loaded.cells)} cells, store {store}")
    try:
        summary = runner.run(loaded, results, run_name, make_executor(executor, jobs, address), retry_failed,
                             group=group)
    except KeyboardInterrupt as interruption:
        done = len(results.finished_keys(run_name or loaded.name))
        word, code = ("terminated", 143) if isinstance(interruption, Terminated) else ("interrupted", 130)
        console.print(f"[yellow]{word}[/]: {done} finished cells are saved in {escape(store)}; rerun to resume.",
                      highlight=False, soft_wrap=True)
        sys.exit(code)
    console.print(str(summary))
    failed = results.cells(summary.run).query("status != 'ok'")
    for error, count in failed["error"].value_counts().head(5).items():
        console.print(f"[yellow]{count} cell(s) did not finish cleanly:[/] {error}", highlight=False)
    if report:
        out = reporting.build(results, summary.run, reports_dir)
        console.print(f"report: {out / 'index.html'} (and index.md, results.csv)")


def chosen_run(results: Store, run_name: str | None) -> str:
    """RUN as given, or else the store's most recent run (said on standard error)."""
    if run_name:
        return run_name
    latest = results.latest_run()
    if latest is None:
        raise UserError(f"there are no runs in {results.path} yet; run a suite first (mi-harness run SUITE).")
    count = len(results.runs())
    errors.print(f"using the most recent run {latest!r} (of {count}) in {results.path}", highlight=False,
                 soft_wrap=True, markup=False)
    return latest


@cli.command()
@click.argument("run_name", metavar="[RUN]", required=False)
@STORE_OPTION
@REPORTS_OPTION
def report(run_name: str | None, store: str, reports_dir: str) -> None:
    """Write reports/<suite>/<RUN>/ (index.html, index.md, results.csv, figures) from the store.

    Without RUN, the most recent run: the one a cell was last written to.
    """
    from harness import report as reporting
    from harness.store import Store

    results = Store(store, read_only=True)
    out = reporting.build(results, chosen_run(results, run_name), reports_dir)
    console.print(f"report: {out / 'index.html'}")


@cli.command()
@click.argument("run_name", metavar="[RUN]", required=False)
@STORE_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv, or json (a list of records).")
@click.option("--output", "-o", type=click.Path(), help="File to write (default: standard output).")
def export(run_name: str | None, store: str, fmt: str, output: str | None) -> None:
    """Write one row per cell of RUN (default: the most recent run)."""
    from harness.metrics import export_frame
    from harness.store import Store

    results = Store(store, read_only=True)
    frame = export_frame(results.cells(chosen_run(results, run_name)))
    text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=1)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("base")
@click.argument("head")
@STORE_OPTION
@click.option("--mse-ratio", default=1.5, show_default=True, help="Fail when MSE grows by this factor ...")
@click.option("--abs-error", default=0.05, show_default=True, help="... and the mean moved more than this (nats).")
@click.option("--z", default=3.0, show_default=True, help="... and more than z standard errors (seeds' spread).")
@click.option("--accuracy-points", default=1.0, show_default=True, help="Encoders: fail when accuracy falls by more.")
@click.option("--speed-ratio", default=1.5, show_default=True, help="Mark faster/slower beyond this factor.")
@click.option("--fail-on-speed", is_flag=True, help="Also fail when a group got slower.")
@click.option("--output", "-o", type=click.Path(), help="Also write the markdown here (e.g. $GITHUB_STEP_SUMMARY).")
def compare(base: str, head: str, store: str, mse_ratio: float, abs_error: float, z: float,
            accuracy_points: float, speed_ratio: float, fail_on_speed: bool, output: str | None) -> None:
    """Compare two runs (RUN, STORE.sqlite:RUN, or a results.csv); exit 1 on an accuracy regression."""
    from harness.report import compare as comparing

    limits = comparing.Thresholds(mse_ratio=mse_ratio, abs_error=abs_error, accuracy_points=accuracy_points, z=z,
                                  speed_ratio=speed_ratio, fail_on_speed=fail_on_speed)
    table, failing = comparing.compare(comparing.load_side(base, store), comparing.load_side(head, store), limits)
    text = comparing.render(table, failing, base, head, limits)
    click.echo(text)
    if output:
        Path(output).write_text(text)
    sys.exit(1 if failing else 0)


@cli.command("refresh-reports")
@click.argument("suites", nargs=-1)
@click.option("--jobs", "-j", default=2, show_default=True, help="Worker processes (one torch thread each).")
@REPORTS_OPTION
@click.option("--store", default="results/reference.sqlite", show_default=True,
              help="SQLite store of the reference runs (each suite's run is discarded and rerun).")
def refresh_reports(suites: tuple[str, ...], jobs: int, reports_dir: str, store: str) -> None:
    """Rerun built-in suites (default: quickstart) from scratch and rewrite their reference reports."""
    from harness import report as reporting
    from harness import runner
    from harness import suite as suite_files
    from harness.runner import make_executor
    from harness.store import Store

    results = Store(store)
    for name in suites or ("quickstart",):
        loaded = suite_files.load(name)
        run_name = f"{loaded.name}"
        results.discard_run(run_name)
        summary = runner.run(loaded, results, run_name, make_executor("local", jobs))
        out = reporting.build(results, summary.run, reports_dir)
        console.print(f"{summary}\nreport: {out / 'index.html'}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: both stop a command the same way (exit 143)."""


def _terminate(_signal: int, _frame: object) -> None:
    raise Terminated()


def main() -> None:
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        registry.add_commands(cli)
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as abort:
        if isinstance(abort.__cause__, Terminated):  # SIGTERM outside the run loop: nothing was in flight
            console.print("[yellow]terminated[/] before any cell ran; nothing was written.", highlight=False)
            sys.exit(143)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except UserError as error:
        console.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except sqlite3.Error as error:  # the store turns its errors into sentences; this is the net beneath it
        console.print(f"[red]error:[/] the results store cannot be used: {escape(str(error))}.", highlight=False,
                      soft_wrap=True)
        sys.exit(2)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
