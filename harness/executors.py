"""Executors run cells and yield (cell, result) as each finishes; only the driver writes the store."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from harness import registry
from harness.cells import CellResult
from harness.errors import UserError
from harness.suite import Cell

Work = Callable[[Cell], CellResult]


class Executor(Protocol):
    def map(self, work: Work, cells: Iterable[Cell]) -> Iterator[tuple[Cell, CellResult]]: ...


def limit_threads() -> None:
    """One torch thread per process: two threads fighting over 2 shared cores run ~20x slower."""
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


class InlineExecutor:
    """Runs cells one after another in this process."""

    def map(self, work: Work, cells: Iterable[Cell]) -> Iterator[tuple[Cell, CellResult]]:
        for cell in cells:
            yield cell, work(cell)


def _exit_with_parent(parent: int) -> None:
    """A SIGKILLed runner cannot stop its pool, and its workers never see EOF; they watch for it instead."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_init(plugin_files: tuple[str, ...]) -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    limit_threads()
    for path in plugin_files:
        registry.load_plugin_file(path)


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
            initargs=(tuple(registry.loaded_plugin_files()),),
        )

    def map(self, work: Work, cells: Iterable[Cell]) -> Iterator[tuple[Cell, CellResult]]:
        pending = list(cells)
        suspects: list[Cell] = []
        pool = self._pool(self.jobs)
        try:
            running: dict[Future, Cell] = {}
            while pending or running:
                while pending and len(running) < self.jobs:
                    cell = pending.pop(0)
                    running[pool.submit(work, cell)] = cell
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    cell = running.pop(future)
                    try:
                        yield cell, future.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(cell)
                if broken:
                    suspects.extend(running.values())
                    running.clear()
                    pool.shutdown(cancel_futures=True)
                    pool = self._pool(self.jobs)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for cell in suspects:
            yield cell, self._isolated(work, cell)

    def _isolated(self, work: Work, cell: Cell) -> CellResult:
        for _attempt in range(self.retries):
            pool = self._pool(1)
            try:
                return pool.submit(work, cell).result()
            except BrokenProcessPool:
                continue
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        return CellResult(status="failed",
                          error=f"the worker process died while running this cell ({self.retries + 1} attempts)")


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> Executor:
    if name == "local":
        return InlineExecutor() if jobs == 1 else ProcessExecutor(jobs)
    if name == "ray":
        from harness.ray_executor import RayExecutor

        return RayExecutor(address=address, jobs=jobs if jobs > 1 else None)
    raise UserError(f"unknown executor {name!r}; valid executors: local, ray.")
