"""`mi-harness list | run | report | export | compare`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from harness import registry
from harness.dataroot import ENV_VAR as DATA_ROOT_VAR
from harness.errors import UserError

console = Console()
STORE_OPTION = click.option("--store", envvar="MI_HARNESS_STORE", default="results/mi-harness.sqlite",
                            show_default=True, help="SQLite results store (env MI_HARNESS_STORE).")
KINDS = {"estimators": "estimator", "tasks": "task", "encoders": "encoder", "datasets": "dataset",
         "suites": "suite"}


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


@cli.command("list")
@click.argument("what", required=False, type=click.Choice([*KINDS, "plugins"]))
def list_command(what: str | None) -> None:
    """Show installed estimators, tasks, encoders, datasets, suites or plugins."""
    if what == "plugins":
        table = Table("plugin", "version", "hooks", "built-in")
        for row in registry.plugins():
            table.add_row(row["name"], row["version"], ", ".join(row["hooks"]), "yes" if row["builtin"] else "")
        console.print(table)
        return
    for plural in [what] if what else list(KINDS):
        specs = registry.specs(KINDS[plural])
        table = Table("name", "summary", "parameters (defaults)", "cite", title=f"{plural} ({len(specs)})",
                      title_justify="left", show_lines=False)
        for name, spec in sorted(specs.items()):
            params = ", ".join(f"{k}={f.default!r}" for k, f in spec.params.model_fields.items())
            table.add_row(name, spec.summary, params, spec.cite)
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
@click.option("--report/--no-report", default=True, show_default=True, help="Write the report afterwards.")
@click.option("--reports-dir", default="reports", show_default=True)
def run(suite: str, store: str, run_name: str | None, jobs: int, executor: str, address: str | None,
        device: str | None, retry_failed: bool, report: bool, reports_dir: str) -> None:
    """Run a suite file (or a registered suite's name), resuming where a previous run stopped."""
    from harness import report as reporting
    from harness import runner
    from harness import suite as suites
    from harness.executors import limit_threads, make_executor
    from harness.store import Store

    limit_threads()
    loaded = suites.load(suite, device=device)
    results = Store(store)
    console.print(f"suite {loaded.name!r}: {len(loaded.cells)} cells, store {store}")
    try:
        summary = runner.run(loaded, results, run_name, make_executor(executor, jobs, address), retry_failed)
    except KeyboardInterrupt:
        done = len(results.finished_keys(run_name or loaded.name))
        console.print(f"[yellow]interrupted[/]: {done} finished cells are saved in {store}; rerun to resume.")
        sys.exit(130)
    console.print(str(summary))
    if report:
        out = reporting.build(results, summary.run, reports_dir)
        console.print(f"report: {out / 'index.html'} (and index.md, results.csv)")


@cli.command()
@click.argument("run_name", metavar="RUN")
@STORE_OPTION
@click.option("--reports-dir", default="reports", show_default=True)
def report(run_name: str, store: str, reports_dir: str) -> None:
    """Write reports/<suite>/<RUN>/ (index.html, index.md, results.csv, figures) from the store."""
    from harness import report as reporting
    from harness.store import Store

    out = reporting.build(Store(store, read_only=True), run_name, reports_dir)
    console.print(f"report: {out / 'index.html'}")


@cli.command()
@click.argument("run_name", metavar="RUN")
@STORE_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(), help="File to write (default: standard output).")
def export(run_name: str, store: str, fmt: str, output: str | None) -> None:
    """Write one row per cell of RUN."""
    from harness.metrics import export_frame
    from harness.store import Store

    frame = export_frame(Store(store, read_only=True).cells(run_name))
    text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=1)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except UserError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
