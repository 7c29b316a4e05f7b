"""Grouped training: cells whose estimators can share one batched model run as one unit.

The protocol is the estimator's, not the core's: an estimator instance that offers
`group_key() -> Hashable | None` and `fit_estimate_group(members, budget, device)` (and
`fit_divergence_group` for two-sample tasks), where members are (estimator, x, y, seed),
is asked to train cells together when their keys match and so do the task's kind and
dimensions, the sample size, the budget, the device and the preprocessing. It must return
what fitting each member alone with its seed would have returned (to float tolerance), an
exception in the slot of a member that failed. Everything else runs cell by cell.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from harness import registry
from harness.cells import CellResult, execute, prepare
from harness.suite import Cell

MAX_GROUP = 64
MAX_GROUP_DATA_BYTES = 256 * 2**20  # float32 copies of every member's x and y held at once


def group_method(estimator: Any, kind: str) -> Callable[..., list[Any]] | None:
    return getattr(estimator, "fit_divergence_group" if kind == "divergence" else "fit_estimate_group", None)


def plan(cells: Sequence[Cell], jobs: int = 1, max_group: int = MAX_GROUP,
         max_group_bytes: int = MAX_GROUP_DATA_BYTES) -> list[list[Cell]]:
    """Split `cells` into units: each a batched group of compatible cells, or a single cell.

    Groups are cut into near-equal chunks so none exceeds `max_group` cells or `max_group_bytes`
    of data, and so that there are at least `jobs` units where the cells allow (one batched
    model per worker keeps every core busy).
    """
    keyed: dict[Hashable, list[Cell]] = {}
    singles: list[list[Cell]] = []
    limits: dict[Hashable, int] = {}
    instances: dict[tuple[str, str, str], Any] = {}
    for cell in cells:
        key, bytes_per_member = _group_key(cell, instances)
        if key is None:
            singles.append([cell])
            continue
        keyed.setdefault(key, []).append(cell)
        limits[key] = max(1, min(max_group, max_group_bytes // max(1, bytes_per_member)))
    groups = [chunk for key, members in keyed.items()
              for chunk in _chunks(members, math.ceil(len(members) / limits[key]))]
    while len(groups) + len(singles) < jobs and any(len(g) > 1 for g in groups):
        largest = max(groups, key=len)
        groups.remove(largest)
        groups += _chunks(largest, 2)
    return [g for g in groups if len(g) > 1] + [g for g in groups if len(g) == 1] + singles


def describe(units: Sequence[Sequence[Cell]]) -> str:
    """'grouped 48 cells into 3 batched models (2 cells run alone)', or '' when nothing groups."""
    grouped = [u for u in units if len(u) > 1]
    if not grouped:
        return ""
    alone = sum(len(u) for u in units if len(u) == 1)
    cells = sum(len(u) for u in grouped)
    return (f"grouped {cells} cells into {len(grouped)} batched model{'s' * (len(grouped) > 1)}"
            + (f" ({alone} cell{'s' * (alone > 1)} run alone)" if alone else ""))


def execute_unit(unit: Sequence[Cell]) -> list[CellResult]:
    """Run one unit of `plan`: a single cell as harness.cells.execute does, a group as one model."""
    if len(unit) == 1:
        return [execute(unit[0])]
    return execute_group(unit)


def execute_group(cells: Sequence[Cell]) -> list[CellResult]:
    """Train `cells` as one batched model; if the group as a whole fails, run them one by one."""
    started = time.perf_counter()
    results: list[CellResult | None] = [None] * len(cells)
    members, slots, truths, kinds = [], [], [], []
    for slot, cell in enumerate(cells):
        try:
            task, estimator, x, y = _prepare(cell)
        except Exception as error:  # the same cell alone would fail the same way
            results[slot] = _failed(error)
            continue
        members.append((estimator, x, y, cell.seed))
        slots.append(slot)
        truths.append(task.ground_truth(estimator.target))
        kinds.append(task.kind)
    if members:
        first = cells[slots[0]]
        try:
            estimates = group_method(members[0][0], kinds[0])(members, first.budget, first.device)
        except Exception:  # e.g. out of memory for the whole group: each cell alone is the fallback
            return [execute(cell) for cell in cells]
        share = (time.perf_counter() - started) / len(cells)
        for slot, estimate, truth in zip(slots, estimates, truths, strict=True):
            if isinstance(estimate, BaseException):
                results[slot] = _failed(estimate)
                continue
            result = CellResult(
                status="ok", true_value=truth.value, true_stderr=truth.stderr, estimate=float(estimate.value),
                trajectory=[(int(s), float(v)) for s, v in estimate.trajectory],
                diagnostics={**estimate.diagnostics, "group_wall_s": share * len(cells)},
                steps=int(estimate.diagnostics.get("steps", 0)))
            if not math.isfinite(result.estimate):
                result.status, result.error = "nonfinite", f"the estimate is {result.estimate}"
            results[slot] = result
    share = (time.perf_counter() - started) / len(cells)
    for result in results:
        result.wall_s = share  # the group's wall time, shared out evenly
    return results  # type: ignore[return-value]


def map_cells(executor: Any, cells: Iterable[Cell], group: bool = True,
              announce: Callable[[str], None] | None = None, jobs: int | None = None
              ) -> Iterator[tuple[Cell, CellResult]]:
    """executor.map over planned units, yielding (cell, result) per cell as each unit lands.

    jobs (default: the executor's `jobs`, else 1) is how many units should at least exist.
    """
    cells = list(cells)
    jobs = jobs or getattr(executor, "jobs", 1)
    units = plan(cells, jobs=jobs) if group else [[cell] for cell in cells]
    message = describe(units)
    if message and announce:
        announce(message)
    for unit, results in executor.map(execute_unit, units):
        if isinstance(results, CellResult):  # an executor's own failure (a dead worker) covers the unit
            results = [results] * len(unit)
        yield from zip(unit, results, strict=True)


def _group_key(cell: Cell, instances: dict[tuple[str, str, str], Any]) -> tuple[Hashable | None, int]:
    if cell.kind != "estimation":
        return None, 0
    try:
        estimator = _instance(instances, "estimator", cell.method, cell.method_params)
        task = _instance(instances, "task", cell.data, cell.data_params)
        key = estimator.group_key() if hasattr(estimator, "group_key") else None
        if key is None or group_method(estimator, task.kind) is None:
            return None, 0
        hash(key)
        shape = (task.kind, int(task.dim_x), int(task.dim_y))
    except Exception:  # let the cell run alone and report its own error
        return None, 0
    bytes_per_member = cell.n * (shape[1] + shape[2]) * 4
    return (key, shape, cell.n, json.dumps(cell.budget.model_dump(), sort_keys=True), cell.device,
            cell.preprocess), bytes_per_member


def _instance(cache: dict[tuple[str, str, str], Any], kind: str, name: str, params: dict[str, Any]) -> Any:
    key = (kind, name, json.dumps(params, sort_keys=True, default=str))
    if key not in cache:
        cache[key] = registry.get(kind, name).instantiate(params)
    return cache[key]


def _prepare(cell: Cell) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    task, estimator, x, y = prepare(cell)
    # float32 now: a group holds every member's data at once
    return task, estimator, np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)


def _chunks(items: list[Cell], count: int) -> list[list[Cell]]:
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for index in range(count):
        stop = start + size + (index < extra)
        out.append(items[start:stop])
        start = stop
    return out


def _failed(error: BaseException) -> CellResult:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return CellResult(status="failed", error=f"{type(error).__name__}: {error}{where}")
