"""Cells as Ray tasks, on a local Ray instance or on a cluster at --address.

Each cell is one task (one CPU, a fraction of a GPU when the suite asks for cuda).
Results travel back to the driver, which alone writes the store (the runner does it as
each result lands), so a cluster needs no shared filesystem and the store no locking.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness import registry, worker
from harness.cells import CellResult, Unit, Work, failed
from harness.errors import UserError

INSTALL_HINT = "pip install 'mi-harness[ray]'"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed; run: {INSTALL_HINT}") from None
    return ray


def needs_gpu(unit: Unit) -> bool:
    return any(cell.device.startswith("cuda") for cell in unit)


def _run_on_worker(work: Work, unit: Unit, plugin_files: tuple[str, ...]) -> list[CellResult]:
    """The body of every Ray task: the worker is set up like a local pool worker, then runs the unit."""
    worker.set_up(plugin_files)
    for cell in unit:
        if cell.device.startswith("cuda"):
            cell.device = "cuda"  # Ray sets CUDA_VISIBLE_DEVICES to the GPU it granted this task
    return work(unit)


class RayExecutor:
    """Runs units of cells as Ray tasks and yields (unit, results) in the order they finish.

    address None starts a private local Ray instance (jobs CPUs, a temporary folder, no
    dashboard) and shuts it down afterwards; an address ("auto", "ray://host:10001",
    "host:6379") joins a running cluster and only disconnects from it. A worker that dies
    (segfault, os._exit, out of memory) is retried by Ray `retries` times, then the cell is
    recorded as failed. On Ctrl-C the outstanding tasks stop (Ray ends them with this driver's
    job; in a session the caller owns, they are cancelled) and the interrupt is re-raised; the
    cells already yielded are in the store.
    """

    def __init__(self, address: str | None = None, retries: int = 2, jobs: int | None = None,
                 gpu_fraction: float = 0.25, max_in_flight: int | None = None):
        if retries < 0:
            raise UserError(f"retries must be 0 or more (got {retries}).")
        if jobs is not None and jobs < 1:
            raise UserError(f"--jobs must be at least 1 (got {jobs}).")
        if not 0 < gpu_fraction <= 1:
            raise UserError(f"gpu_fraction must be in (0, 1], the share of one GPU per cell (got {gpu_fraction}).")
        self.address = address
        self.retries = retries
        self.num_cpus = jobs
        self.jobs = jobs or 1
        self.gpu_fraction = gpu_fraction
        self.max_in_flight = max_in_flight

    def map(self, work: Work, units: list[Unit]) -> Iterator[tuple[Unit, list[CellResult]]]:
        pending = deque(units)
        if not pending:
            return
        ray = _import_ray()
        owned, temp_dir = self._connect(ray)
        running: dict[Any, Unit] = {}
        try:
            resources = ray.cluster_resources()
            self._check_gpus(pending, resources)
            window = self.max_in_flight or max(16, 2 * int(resources.get("CPU", 1)))
            remote = ray.remote(_run_on_worker)
            plugin_files = tuple(str(Path(p).resolve()) for p in registry.loaded_plugin_files())
            while pending or running:
                while pending and len(running) < window:
                    unit = pending.popleft()
                    gpus = self.gpu_fraction if needs_gpu(unit) else 0
                    task = remote.options(num_cpus=1, num_gpus=gpus, max_retries=self.retries)
                    running[task.remote(work, unit, plugin_files)] = unit
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    unit = running.pop(ref)
                    yield unit, self._results(ray, ref, unit)
        finally:
            # Reached on normal completion, on Ctrl-C inside ray.wait, and when the runner stops early.
            if owned:
                # Disconnecting ends this driver's job, and Ray kills the job's running tasks. Cancelling
                # them first would race a task that is just finishing, which aborts the driver inside
                # Ray 2.60 ("Tried to complete task that was not pending", ray-project/ray#54798).
                ray.shutdown()
            else:
                self._cancel(ray, running)
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)

    @staticmethod
    def _cancel(ray: Any, running: Iterable[Any]) -> None:
        """Stop the tasks still running in a Ray session that outlives this executor (a notebook's)."""
        for ref in running:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that just finished cannot be cancelled; fine
                pass

    def _connect(self, ray: Any) -> tuple[bool, str | None]:
        """Join or start Ray; returns (whether this executor must shut it down, its temporary folder)."""
        if ray.is_initialized():  # a notebook or a test that set Ray up itself keeps its instance
            return False, None
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
            except Exception as error:  # noqa: BLE001 - Ray raises many types for an unreachable cluster
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UserError(
                    f"cannot connect to the Ray cluster at {self.address!r}: {first}. Start one with "
                    "`ray start --head` and pass the address it prints, or leave out --address to run on "
                    "a private local instance."
                ) from None
            return True, None
        # Ray's socket paths must stay under ~107 characters, so keep the folder name short.
        temp_dir = tempfile.mkdtemp(prefix="mih-ray-")
        ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 _temp_dir=temp_dir)
        return True, temp_dir

    def _check_gpus(self, units: Iterable[Unit], resources: dict[str, float]) -> None:
        if any(needs_gpu(unit) for unit in units) and resources.get("GPU", 0) <= 0:
            where = f"at {self.address!r}" if self.address else "started here"
            raise UserError(f"the suite asks for cuda but the Ray cluster {where} has no GPUs; "
                            "run with --device cpu or join a cluster with GPU nodes.")

    def _results(self, ray: Any, ref: Any, unit: Unit) -> list[CellResult]:
        """What the work returned, or one failed result per cell when Ray could not run it."""
        try:
            return ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
                ray.exceptions.NodeDiedError) as error:
            message = (f"the Ray worker process died while running this cell ({self.retries + 1} attempts): "
                       f"{type(error).__name__}")
        except ray.exceptions.RayError as error:
            text = str(error).strip().splitlines()
            message = f"{type(error).__name__}: {text[0] if text else ''}"
        return [failed(message) for _ in unit]
