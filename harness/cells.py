"""Running one Cell: build the plugins from the registry, fit, and describe what happened.

Runs inside worker processes too, so it returns plain data and never raises for a
plugin's failure: a cell that raises, or ends non-finite, is a result with its status.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import downstream, registry
from harness.suite import Cell


@dataclass
class CellResult:
    status: str  # "ok", "failed" (raised), "nonfinite" (returned NaN or inf)
    error: str = ""
    true_value: float | None = None
    true_stderr: float | None = None
    estimate: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    steps: int = 0


def execute(cell: Cell) -> CellResult:
    started = time.perf_counter()
    try:
        result = run_representation(cell) if cell.kind == "representation" else run_estimation(cell)
    except Exception as error:  # a plugin's failure is a result, not a crash of the suite
        last = traceback.extract_tb(error.__traceback__)[-1]
        where = f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        result = CellResult(status="failed", error=f"{type(error).__name__}: {error}{where}")
    result.wall_s = time.perf_counter() - started
    if result.status == "ok" and not math.isfinite(result.estimate):
        result.status, result.error = "nonfinite", f"the estimate is {result.estimate}"
    return result


def prepare(cell: Cell) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """Build the task and estimator, draw the cell's samples (seeded by the cell) and preprocess them."""
    task = registry.get("task", cell.data).instantiate(cell.data_params)
    estimator = registry.get("estimator", cell.method).instantiate(cell.method_params)
    x, y = task.sample(cell.n, np.random.default_rng(cell.seed))
    if cell.preprocess == "standardize" and task.kind == "mi":  # per dimension, as Beyond-Normal does
        x, y = ((a - a.mean(axis=0)) / a.std(axis=0) for a in (x, y))
    return task, estimator, x, y


def run_estimation(cell: Cell) -> CellResult:
    task, estimator, x, y = prepare(cell)
    if task.kind == "divergence":
        if not hasattr(estimator, "fit_divergence"):
            raise TypeError(f"estimator {cell.method!r} estimates from paired samples; "
                            f"task {cell.data!r} is a two-sample divergence task")
        estimate = estimator.fit_divergence(x, y, cell.budget, cell.device, cell.seed)
    else:
        estimate = estimator.fit_estimate(x, y, cell.budget, cell.device, cell.seed)
    truth = task.ground_truth(estimator.target)
    return CellResult(
        status="ok",
        true_value=truth.value,
        true_stderr=truth.stderr,
        estimate=float(estimate.value),
        trajectory=[(int(s), float(v)) for s, v in estimate.trajectory],
        diagnostics=estimate.diagnostics,
        steps=int(estimate.diagnostics.get("steps", 0)),
    )


def run_representation(cell: Cell) -> CellResult:
    spec = registry.get("encoder", cell.method)
    dataset = registry.get("dataset", cell.data).instantiate(cell.data_params)
    encoder = spec.instantiate(cell.method_params)
    embeddings = encoder.fit(dataset, cell.budget, cell.device, cell.seed)
    metrics = downstream.evaluate(dataset, np.asarray(embeddings.features), cell.seed)
    # A paper's number belongs to the trained method, not to its untrained-architecture baseline.
    published = None if cell.method_params.get("random_init") else spec.published.get(cell.data)
    return CellResult(
        status="ok",
        true_value=published[0] if published else None,
        true_stderr=published[1] if published else None,
        estimate=metrics["accuracy"],
        metrics=metrics,
        trajectory=[(int(s), float(v)) for s, v in embeddings.trajectory],
        diagnostics=embeddings.diagnostics,
        steps=int(embeddings.diagnostics.get("epochs", 0)),
    )
