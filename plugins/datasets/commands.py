"""`mi-harness data fetch | check`: install the real datasets from their publishers, and verify them.

Added through `register_commands` (plugins.datasets.graphs). The table of what to fetch is
plugins.datasets.sources; the download, checksum and atomic rename are harness.download's.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import click

from harness.download import DEFAULT_TIMEOUT, MIRROR_VARIABLE

ROOT_OPTION = click.option("--data-root", type=click.Path(),
                           help="Folder of real datasets (default: mi-harness --data-root, or env MI_HARNESS_DATA_ROOT).")


@click.group("data")
def data() -> None:
    """Download (fetch) and verify (check) the real datasets of the data root."""


@data.command("fetch")
@click.argument("names", nargs=-1, required=True, metavar="NAME...|all")
@ROOT_OPTION
@click.option("--mirror", help=f"Base URL that replaces every publisher's host, paths kept (env {MIRROR_VARIABLE}).")
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a server may stay silent before the download fails.")
def fetch(names: tuple[str, ...], data_root: str | None, mirror: str | None, timeout: float) -> None:
    """Download datasets from their publishers, verify every file's SHA-256, and install them.

    A file already installed with the right checksum is kept, not downloaded again; a corrupt one is
    replaced. An interrupted or damaged download leaves no file behind: run the command again.
    """
    from harness import download
    from harness.dataroot import root_from
    from plugins.datasets.sources import select

    chosen = select(names)
    root = root_from(data_root)
    files = [file for source in chosen for file in source.files]
    done = download.fetch(root, files, mirror=mirror, timeout=timeout, echo=lambda line: click.echo(line, err=True),
                          what="data root")
    for source in chosen:
        counts = Counter(done[file.path] for file in source.files)
        if counts["kept"] == len(source.files):
            click.echo(f"{source.name}: already installed ({len(source.files)} files verified) in {root / source.folder}")
        else:
            parts = [f"{counts[what]} {what}" for what in ("installed", "replaced", "kept") if counts[what]]
            click.echo(f"{source.name}: {', '.join(parts)} in {root / source.folder}")


@data.command("check")
@click.argument("names", nargs=-1, metavar="[NAME...|all]")
@ROOT_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check(names: tuple[str, ...], data_root: str | None, fmt: str) -> None:
    """Say of each dataset (default: all) whether it is ok, missing or corrupt; exit 1 unless all are ok."""
    from harness import download
    from harness.dataroot import root_from
    from harness.errors import UserError
    from plugins.datasets.sources import FETCH_COMMAND, select

    root = root_from(data_root)
    if root.exists() and not root.is_dir():
        raise UserError(f"the data root {root} is a file, not a folder.")
    reports = []
    for source in select(names):
        states = download.inspect(root, source.files)
        kinds = {state.state for state in states}
        status = "corrupt" if "corrupt" in kinds else "missing" if "missing" in kinds else "ok"
        reports.append({"name": source.name, "status": status, "folder": str(root / source.folder),
                        "files": [{"path": state.file.path, "status": state.state, "expected": state.file.sha256,
                                   "found": state.found if state.state == "corrupt" else
                                   (state.file.sha256 if state.state == "ok" else None)} for state in states]})
    healthy = sum(report["status"] == "ok" for report in reports)
    if fmt == "json":
        click.echo(json.dumps({"data_root": str(root), "datasets": reports}, indent=1))
    else:
        for report in reports:
            click.echo(_line(report, FETCH_COMMAND))
        click.echo(f"{healthy} of {len(reports)} datasets ok under {root}")
    sys.exit(0 if healthy == len(reports) else 1)


def _line(report: dict, fetch_command: str) -> str:
    files = report["files"]
    name = report["name"]
    if report["status"] == "ok":
        return f"{name}: ok ({len(files)} files verified)"
    repair = f"run: {fetch_command} {name}"
    if report["status"] == "missing":
        missing = [file["path"].rsplit("/", 1)[-1] for file in files if file["status"] == "missing"]
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        return f"{name}: missing {len(missing)} of {len(files)} files ({shown}); {repair}"
    corrupt = [f"{file['path']} expected SHA-256 {file['expected']}, found {file['found']}"
               for file in files if file["status"] == "corrupt"]
    return f"{name}: corrupt: {'; '.join(corrupt)}; {repair}"
