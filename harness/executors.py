"""Executors run units of cells and yield (unit, one result per cell) as each unit finishes.

Only the driver writes the store. The executors know nothing of estimators: they move units
to where they run (this process, a pool of worker processes, a Ray cluster: harness.ray_executor)
and results back. harness.runner.make_executor chooses one.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from harness import registry, worker
from harness.cells import CellResult, Unit, Work, failed
from harness.errors import UserError


class Executor(Protocol):
    """Runs `work` on each unit; yields (unit, its results) in the order units finish.

    jobs is how many units it runs at once, so the planner makes at least that many.
    An executor's own failure (a worker that died) is one failed result per cell of the unit.
    """

    jobs: int

    def map(self, work: Work, units: list[Unit]) -> Iterator[tuple[Unit, list[CellResult]]]: ...


class InlineExecutor:
    """Runs units one after another in this process, on one torch thread (the caller's count is restored)."""

    jobs = 1

    def map(self, work: Work, units: list[Unit]) -> Iterator[tuple[Unit, list[CellResult]]]:
        previous = worker.set_threads(1)
        try:
            for unit in units:
                yield unit, work(unit)
        finally:
            worker.set_threads(previous)


def _exit_with_parent(parent: int) -> None:
    """A SIGKILLed runner cannot stop its pool, and its workers never see EOF; they watch for it instead."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_init(parent: int, plugin_files: tuple[str, ...]) -> None:
    # The parent's pid is read by the driver before the pool starts: a worker that read its own
    # getppid() after a runner killed during start-up would watch its new parent (init) forever.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    worker.set_up(plugin_files)


class ProcessExecutor:
    """A pool of `jobs` spawned worker processes, one torch thread each.

    A worker that dies (segfault, os._exit, out of memory) breaks the pool; the cells
    that were in flight are then retried one at a time in a fresh process, up to
    `retries` times, so a poisonous cell cannot take innocent neighbours down with it.
    """

    def __init__(self, jobs: int, retries: int = 2):
        if jobs < 1:
            raise UserError(f"--jobs must be at least 1 (got {jobs}).")
        self.jobs = jobs
        self.retries = retries

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(), tuple(registry.loaded_plugin_files())),
        )

    def map(self, work: Work, units: list[Unit]) -> Iterator[tuple[Unit, list[CellResult]]]:
        pending = list(units)
        suspects: list[Unit] = []
        pool = self._pool(self.jobs)
        try:
            running: dict[Future, Unit] = {}
            while pending or running:
                while pending and len(running) < self.jobs:
                    unit = pending.pop(0)
                    running[pool.submit(work, unit)] = unit
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    unit = running.pop(future)
                    try:
                        yield unit, future.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(unit)
                if broken:
                    suspects.extend(running.values())
                    running.clear()
                    pool.shutdown(cancel_futures=True)
                    pool = self._pool(self.jobs)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for unit in suspects:
            # A group's members go one by one, so one poisonous member cannot take the others down.
            yield unit, [result for cell in unit for result in self._isolated(work, [cell])]

    def _isolated(self, work: Work, unit: Unit) -> list[CellResult]:
        for _attempt in range(self.retries):
            pool = self._pool(1)
            try:
                return pool.submit(work, unit).result()
            except BrokenProcessPool:
                continue
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        message = f"the worker process died while running this cell ({self.retries + 1} attempts)"
        return [failed(message) for _ in unit]
