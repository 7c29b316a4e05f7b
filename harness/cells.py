"""Cells and the one fit path: build the plugins from the registry, fit, describe what happened.

A unit is one cell, or several cells whose estimators train as one batched model
(harness.grouping plans them); `execute_unit` runs either. It runs inside worker processes
too, so it returns plain data and never raises for a plugin's failure: a cell that raises,
or ends non-finite, is a result with its status.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness import registry
from harness.api import (
    Budget,
    DensityRatioTask,
    EntropyTask,
    Estimate,
    GroundTruth,
    GroupedEstimator,
    GroupedTwoSampleEstimator,
    TwoSampleEstimator,
    UsesEntropy,
)
from harness.errors import UserError, describe_exception
from harness.worker import seed_everything


@dataclass
class Cell:
    """One estimator x task (or encoder x dataset) x params x seed x sample size."""

    suite: str
    study: Literal["estimation", "representation"]  # estimator x task, or encoder x dataset
    method: str
    method_params: dict[str, Any]
    data: str
    data_params: dict[str, Any]
    seed: int
    n: int
    budget: Budget
    device: str
    method_label: str
    data_label: str
    preprocess: str = "none"
    key: str = field(init=False)

    def __post_init__(self) -> None:
        identity = [self.suite, self.study, self.method, self.method_params, self.data, self.data_params,
                    self.seed, self.n, self.budget.model_dump()]
        if self.preprocess != "none":  # keeps the keys of existing stores unchanged
            identity.append(self.preprocess)
        self.key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return f"{self.method_label} x {self.data_label} (seed {self.seed}, n {self.n})"


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
    interval_low: float | None = None
    interval_high: float | None = None
    criterion: float | None = None
    flags: dict[str, str] = field(default_factory=dict)


Unit = Sequence[Cell]
Work = Callable[[Unit], list[CellResult]]


def failed(error: BaseException | str) -> CellResult:
    return CellResult(status="failed", error=error if isinstance(error, str) else describe_exception(error))


def execute(cell: Cell) -> CellResult:
    """One cell alone: a unit of one."""
    return execute_unit([cell])[0]


def execute_unit(unit: Unit) -> list[CellResult]:
    """One result per cell of `unit`; the unit's wall time is shared out evenly among its cells."""
    started = time.perf_counter()
    if unit[0].study == "representation":
        results = [_represent(cell) for cell in unit]
    else:
        results = _estimate(unit)
    wall_s = time.perf_counter() - started
    for result in results:
        result.wall_s = wall_s / len(unit)
        if len(unit) > 1:
            result.diagnostics["group_wall_s"] = wall_s
        if result.status == "ok" and not math.isfinite(result.estimate):
            result.status, result.error = "nonfinite", f"the estimate is {result.estimate}"
    return results


@dataclass
class Prepared:
    """A cell ready to fit: its built task and estimator, its samples, and the truth its target has."""

    cell: Cell
    task: Any
    estimator: Any
    x: np.ndarray
    y: np.ndarray
    truth: GroundTruth
    scaling: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None  # standardize's (mean, sd) of x and of y

    def raw(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The task's own samples at `rows`, before the suite's preprocessing."""
        x, y = (np.asarray(a[rows], dtype=np.float64) for a in (self.x, self.y))
        if self.scaling is None:
            return x, y
        (mean_x, sd_x), (mean_y, sd_y) = self.scaling
        return x * sd_x + mean_x, y * sd_y + mean_y


def prepare(cell: Cell, float32: bool = False) -> Prepared:
    """Build the task and estimator, draw the cell's samples (seeded by the cell) and preprocess them.

    The ground truth comes first: a task that declines the estimator's target fails the cell
    before any training. A group holds every member's data at once, so it asks for float32.
    """
    task = registry.get("task", cell.data).instantiate(cell.data_params)
    estimator = registry.get("estimator", cell.method).instantiate(cell.method_params)
    truth = task.ground_truth(estimator.target)
    x, y = task.sample(cell.n, np.random.default_rng(cell.seed))
    sides = ("x", "y") if task.measures == "mi" else ("the samples of P", "the samples of Q")
    for values, side in zip((x, y), sides, strict=True):  # before any estimator sees them
        bad = np.count_nonzero(~np.isfinite(np.asarray(values, dtype=np.float64)))
        if bad:
            raise UserError(f"task {cell.data!r} sampled {bad} non-finite value(s) (NaN or inf) in {side}; "
                            "no estimator was fitted.")
    scaling = None
    if cell.preprocess == "standardize" and task.measures == "mi":  # per dimension, as Beyond-Normal does
        scaling = tuple((a.mean(axis=0), a.std(axis=0)) for a in (x, y))
        x, y = ((a - mean) / sd for a, (mean, sd) in zip((x, y), scaling, strict=True))
    if isinstance(estimator, UsesEntropy) and estimator.needs_entropy and isinstance(task, EntropyTask) \
            and "y" not in task.discrete_sides:
        # h(Y / s) = h(Y) - sum log s: the entropy of y as the estimator sees it
        estimator = estimator.with_entropy_y(float(task.entropy("y")) - (
            float(np.sum(np.log(scaling[1][1]))) if scaling else 0.0))
    if float32:
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    return Prepared(cell, task, estimator, x, y, truth, scaling)


def group_fit(estimator: Any, measures: str) -> Callable[..., list[Any]] | None:
    """The estimator's grouped fit for this kind of task, if it offers one."""
    if measures == "divergence":
        return estimator.fit_divergence_group if isinstance(estimator, GroupedTwoSampleEstimator) else None
    return estimator.fit_estimate_group if isinstance(estimator, GroupedEstimator) else None


def _estimate(unit: Unit) -> list[CellResult]:
    results: list[CellResult | None] = [None] * len(unit)
    members: list[tuple[int, Prepared]] = []
    for slot, cell in enumerate(unit):
        try:
            members.append((slot, prepare(cell, float32=len(unit) > 1)))
        except Exception as error:  # the same cell alone would fail the same way
            results[slot] = failed(error)
    if members:
        try:
            estimates = _fit([member for _, member in members])
        except Exception as error:  # e.g. out of memory for the whole group: each cell alone is the fallback
            if len(members) > 1:
                return _alone_after(unit, error)
            estimates = [error]
        for (slot, member), estimate in zip(members, estimates, strict=True):
            results[slot] = _described(member, estimate)
    return results  # type: ignore[return-value]


def _fit(members: list[Prepared]) -> list[Estimate | BaseException]:
    """Fit one member alone, or several as one batched model; seeds and threads are the harness's."""
    first = members[0]
    cell, estimator = first.cell, first.estimator
    seed_everything(cell.seed)
    if len(members) > 1:
        fit = group_fit(estimator, first.task.measures)
        return fit([(m.estimator, m.x, m.y, m.cell.seed) for m in members], cell.budget, cell.device)
    if first.task.measures == "divergence":
        if not isinstance(estimator, TwoSampleEstimator):
            raise TypeError(f"estimator {cell.method!r} estimates from paired samples; "
                            f"task {cell.data!r} is a two-sample divergence task")
        return [estimator.fit_divergence(first.x, first.y, cell.budget, cell.device, cell.seed)]
    return [estimator.fit_estimate(first.x, first.y, cell.budget, cell.device, cell.seed)]


def _alone_after(unit: Unit, error: BaseException) -> list[CellResult]:
    """Rerun a failed group's cells one by one, each result saying so."""
    reason = f"its group of {len(unit)} failed as a whole, so it ran alone; the group's error: {describe_exception(error)}"
    results = [execute(cell) for cell in unit]
    for result in results:
        result.diagnostics["group_fallback"] = reason
    return results


def _described(member: Prepared, estimate: Estimate | BaseException) -> CellResult:
    if isinstance(estimate, BaseException):
        return failed(estimate)
    if not isinstance(estimate, Estimate) or not isinstance(estimate.value, int | float | np.number):
        got = estimate.value if isinstance(estimate, Estimate) else estimate
        return failed(f"TypeError: estimator {member.cell.method!r} returned {type(got).__name__} {got!r:.60} as "
                      "its value; fit_estimate must return harness.Estimate(value=<a float, in nats>)")
    problem = _malformed(estimate)
    if problem:
        return failed(f"TypeError: estimator {member.cell.method!r} returned {problem}")
    low, high = (float(v) for v in estimate.interval) if estimate.interval is not None else (None, None)
    metrics, diagnostics = _pmi_accuracy(member, estimate)
    return CellResult(
        status="ok", true_value=member.truth.value, true_stderr=member.truth.stderr,
        estimate=float(estimate.value),
        trajectory=[(int(s), float(v)) for s, v in estimate.trajectory],
        metrics=metrics, diagnostics=dict(estimate.diagnostics) | diagnostics,
        steps=int(estimate.diagnostics.get("steps", 0)), interval_low=low, interval_high=high,
        criterion=None if estimate.criterion is None else float(estimate.criterion),
        flags={str(name): str(text) for name, text in estimate.flags.items()})


PMI_PAIRS_KEPT = 200  # (true, learned) pairs kept per cell for the report's scatter


def _pmi_accuracy(member: Prepared, estimate: Estimate) -> tuple[dict[str, float], dict[str, Any]]:
    """The learned PMI's RMSE against the task's (metric "pmi_rmse") and a sample of (true, learned) pairs.

    Pointwise MI is unchanged by an invertible map of each side, so the learned PMI of the preprocessed
    pairs is compared with the task's at the raw pairs."""
    if estimate.pmi is None or not isinstance(member.task, DensityRatioTask) or member.estimator.target != "mi":
        return {}, {}
    rows, learned = (np.asarray(a) for a in estimate.pmi)
    rows = rows.astype(np.int64)
    try:
        true = np.asarray(member.task.log_density_ratio(*member.raw(rows)), dtype=np.float64)
    except NotImplementedError:  # the task's class has the method but not this task's ratio
        return {}, {}
    learned = learned.astype(np.float64)
    usable = np.isfinite(true) & np.isfinite(learned)
    if not usable.any():
        return {}, {}
    rmse = float(np.sqrt(np.mean((learned[usable] - true[usable]) ** 2)))
    pairs = np.stack([true[usable], learned[usable]], axis=1)[:PMI_PAIRS_KEPT]
    return {"pmi_rmse": rmse}, {"pmi_pairs": np.round(pairs, 4).tolist()}


def _malformed(estimate: Estimate) -> str | None:
    """What is wrong with an Estimate's interval, criterion or flags, in a plugin author's terms, or None."""
    interval = estimate.interval
    if interval is not None:
        try:
            low, high = (float(v) for v in interval)
        except (TypeError, ValueError):
            return f"interval {interval!r:.60}; give None or (low, high), two floats in nats"
        if math.isnan(low) or math.isnan(high) or low > high:
            return f"interval ({low}, {high}); give low <= high (either may be infinite, neither NaN)"
    if estimate.criterion is not None and not isinstance(estimate.criterion, int | float | np.number):
        return f"criterion {estimate.criterion!r:.60}; give None or a float (higher: a better configuration)"
    if not isinstance(estimate.flags, dict):
        return f"flags {estimate.flags!r:.60}; give a dict of flag name -> one sentence"
    return None


def _represent(cell: Cell) -> CellResult:
    from harness import downstream  # scikit-learn: only where encoders are evaluated

    try:
        spec = registry.get("encoder", cell.method)
        dataset = registry.get("dataset", cell.data).instantiate(cell.data_params)
        encoder = spec.instantiate(cell.method_params)
        seed_everything(cell.seed)
        embeddings = encoder.fit(dataset, cell.budget, cell.device, cell.seed)
        metrics, chosen = downstream.evaluate(dataset, embeddings, cell.seed, spec.published_selection)
    except Exception as error:  # a plugin's failure is a result, not a crash of the suite
        return failed(error)
    # A paper's number belongs to the trained method, not to its untrained-architecture baseline.
    published = None if embeddings.untrained_baseline else spec.published.get(cell.data)
    return CellResult(
        status="ok",
        true_value=published[0] if published else None,
        true_stderr=published[1] if published else None,
        estimate=metrics["accuracy"],
        metrics=metrics,
        trajectory=[(int(s), float(v)) for s, v in embeddings.trajectory],
        diagnostics=dict(embeddings.diagnostics) | chosen | {"untrained_baseline": bool(embeddings.untrained_baseline)},
        steps=int(embeddings.diagnostics.get("epochs", 0)),
    )
