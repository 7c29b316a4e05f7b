"""Grouped training: which cells can share one batched model, and the units the runner maps.

The protocol is the estimator's, not the core's (harness.api.Groupable with GroupedEstimator or
GroupedTwoSampleEstimator): cells are asked to train together when their estimators' group keys
match and so do what the task measures and its dimensions, the sample size, the budget, the device and
the preprocessing. harness.cells.execute_unit runs a unit, of one cell or of many.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

from harness import registry
from harness.api import Groupable
from harness.cells import Cell, CellResult, execute_unit, group_fit
from harness.executors import Executor

MAX_GROUP = 64
MAX_GROUP_DATA_BYTES = 256 * 2**20  # float32 copies of every member's x and y held at once


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


def map_cells(executor: Executor, cells: Iterable[Cell], group: bool = True,
              announce: Callable[[str], None] | None = None) -> Iterator[tuple[Cell, CellResult]]:
    """executor.map over planned units (at least executor.jobs of them where the cells allow),
    yielding (cell, result) per cell as each unit lands."""
    cells = list(cells)
    units = plan(cells, jobs=executor.jobs) if group else [[cell] for cell in cells]
    message = describe(units)
    if message and announce:
        announce(message)
    for unit, results in executor.map(execute_unit, units):
        yield from zip(unit, results, strict=True)


def _group_key(cell: Cell, instances: dict[tuple[str, str, str], Any]) -> tuple[Hashable | None, int]:
    if cell.study != "estimation":
        return None, 0
    try:
        estimator = _instance(instances, "estimator", cell.method, cell.method_params)
        task = _instance(instances, "task", cell.data, cell.data_params)
        key = estimator.group_key() if isinstance(estimator, Groupable) else None
        if key is None or group_fit(estimator, task.measures) is None:
            return None, 0
        hash(key)
        shape = (task.measures, int(task.dim_x), int(task.dim_y))
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


def _chunks(items: list[Cell], count: int) -> list[list[Cell]]:
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    out, start = [], 0
    for index in range(count):
        stop = start + size + (index < extra)
        out.append(items[start:stop])
        start = stop
    return out


