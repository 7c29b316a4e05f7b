"""Runs a suite's cells through an executor, writing each result the moment it lands."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness import grouping
from harness.errors import UserError
from harness.executors import Executor, InlineExecutor, ProcessExecutor
from harness.store import Store
from harness.suite import Suite


@dataclass
class RunSummary:
    run: str
    total: int
    skipped: int
    statuses: Counter

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items())) or "nothing new"
        return f"run {self.run!r}: {self.total} cells, {self.skipped} already in the store, this time: {counts}"


def run(
    suite: Suite,
    store: Store,
    run_name: str | None = None,
    executor: Executor | None = None,
    retry_failed: bool = False,
    show_progress: bool = True,
    group: bool = True,
) -> RunSummary:
    """Run every cell of `suite` not yet in `store` under `run_name` (default: the suite's name).

    A rerun after a crash, kill or Ctrl-C resumes: finished cells are skipped, and each
    result is committed before the next is awaited, so at most the cells in flight are lost.
    With `group`, compatible cells train as one batched model (harness.grouping) and say so.
    The run is leased to this process while it runs: a second runner of the same run is refused.
    """
    run_name = run_name or suite.name
    store.check_run(run_name)  # a damaged row is refused before anything is written
    store.begin_run(run_name, suite)
    note = store.take_lease(run_name)
    if note:
        Console(stderr=True).print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    try:
        return _run_cells(suite, store, run_name, executor, retry_failed, show_progress, group)
    finally:
        with contextlib.suppress(UserError):  # a full disk may refuse this too; a dead pid's lease is taken over
            store.release_lease(run_name)


def _run_cells(suite: Suite, store: Store, run_name: str, executor: Executor | None, retry_failed: bool,
               show_progress: bool, group: bool) -> RunSummary:
    done = store.finished_keys(run_name, include_failed=not retry_failed)
    todo = [cell for cell in suite.cells if cell.key not in done]
    statuses: Counter = Counter()
    executor = executor or InlineExecutor()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        bar = progress.add_task(f"{suite.name}", total=len(todo))
        for cell, result in grouping.map_cells(executor, todo, group=group, announce=progress.console.print):
            store.write(run_name, cell, result)
            statuses[result.status] += 1
            if store.lease_lost(run_name):
                done_here = sum(statuses.values())
                raise UserError(f"run {run_name!r} was taken over by another runner while this one went unheard "
                                f"(see MI_HARNESS_LEASE_TIMEOUT); the {done_here} cell{'s' * (done_here != 1)} "
                                "finished here are kept, the rest left to it.")
            progress.update(bar, advance=1, description=f"{suite.name}: {cell}")
    return RunSummary(run_name, len(suite.cells), len(suite.cells) - len(todo), statuses)


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> Executor:
    """`local` (this process, or a pool of `jobs` workers) or `ray` (a private instance, or the cluster at address)."""
    if name == "local":
        return InlineExecutor() if jobs == 1 else ProcessExecutor(jobs)
    if name == "ray":
        from harness.ray_executor import RayExecutor

        return RayExecutor(address=address, jobs=jobs if jobs > 1 else None)
    raise UserError(f"unknown executor {name!r}; valid executors: local, ray.")
