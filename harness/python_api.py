"""The Python API for notebooks and scripts: one estimate, or a whole suite."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from harness import registry
from harness.api import Budget, Estimate
from harness.errors import UserError
from harness.paths import DEFAULT_STORE
from harness.worker import seed_everything, set_threads

MAX_SEED = 2**63  # seeds are stored as SQLite integers
HARNESS_KEYWORDS = ("seed", "steps", "batch_size", "device", "threads")


def estimate(name: str, x: Any, y: Any, *, seed: int = 0, steps: int = 1000, batch_size: int = 64,
             device: str = "cpu", threads: int = 1, **params: Any) -> Estimate:
    """Estimate I(X;Y) (or the estimator's target) from paired samples with a registered estimator.

    x and y are (n, d) arrays (or 1-d for d = 1) of finite real numbers with the same n. As in a
    suite, the harness seeds Python, numpy and torch from `seed` before the fit, and torch runs
    `threads` intra-op threads for it (one by default: fastest for these small models on shared
    cores); the caller's thread count is restored afterwards.

    >>> harness.estimate("infonce", x, y, steps=2000, critic="concat").value
    """
    from harness.suite import validate_params
    from harness.timing import resolve_device

    registry.warn_about_problems()
    where = f"harness.estimate({name!r})"
    spec = registry.get("estimator", name, where)
    for key in params:
        close = difflib.get_close_matches(key, HARNESS_KEYWORDS, n=1, cutoff=0.75)
        if close and key not in spec.params.model_fields:
            raise UserError(f"{where}: unknown keyword {key!r}. Did you mean {close[0]!r}? harness.estimate's own "
                            f"keywords are {', '.join(HARNESS_KEYWORDS)}; the estimator's are "
                            f"{', '.join(spec.params.model_fields) or 'none'}.")
    validated = validate_params("estimator", name, params, where)
    x, y = samples(x, "x"), samples(y, "y")
    if len(x) != len(y):
        raise UserError(f"{where}: x has {len(x)} rows and y has {len(y)}; pairs must line up row by row.")
    _check_int("seed", seed, 0, MAX_SEED - 1)
    _check_int("steps", steps, 1, 10**9)
    _check_int("batch_size", batch_size, 2, 10**7)
    _check_int("threads", threads, 1, 1024)
    resolve_device(device)
    estimator = spec.instantiate(validated)
    previous = set_threads(threads)
    try:
        seed_everything(seed)
        return estimator.fit_estimate(x, y, Budget(steps=steps, batch_size=batch_size), device, seed)
    finally:
        set_threads(previous)


def samples(values: Any, name: str) -> np.ndarray:
    """`values` as an (n, d) float64 array of finite numbers, or a UserError naming what is wrong."""
    if hasattr(values, "detach"):  # a torch tensor, perhaps on a GPU or requiring grad
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise UserError(f"{name} is not a rectangular array of numbers: {error}.") from None
    if np.iscomplexobj(array) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise UserError(f"{name} must hold real numbers; got an array of dtype {array.dtype}.")
    array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0 or len(array) < 2:
        raise UserError(f"{name} must be an (n, d) array with n >= 2 rows and d >= 1 columns; got shape {array.shape}.")
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise UserError(f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first at row {row}, column "
                        f"{column}; remove or impute them first.")
    constant = np.flatnonzero(np.ptp(array, axis=0) == 0)
    if constant.size:
        raise UserError(f"{name}: column(s) {constant.tolist()[:10]} are constant; a constant carries no "
                        "information (its MI with anything is 0): drop it.")
    return array


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UserError(f"{name} must be an integer; got {type(value).__name__} {_shown(value)}.")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}; got {_shown(value)}.")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def run_suite(path: str | Path, *, store: str | Path = DEFAULT_STORE, run: str | None = None,
              jobs: int = 1, device: str | None = None, report_dir: str | Path | None = None):
    """Run a suite file (resuming), optionally write its report, and return the summary table."""
    from harness import metrics, report, runner, suite
    from harness.runner import make_executor
    from harness.store import Store

    registry.warn_about_problems()
    loaded = suite.load(path, device=device)
    results = Store(store)
    summary = runner.run(loaded, results, run, make_executor("local", jobs), show_progress=False)
    if report_dir is not None:
        report.build(results, summary.run, report_dir)
    return metrics.summarise(results.cells(summary.run))
