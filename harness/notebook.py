"""The Python API for notebooks and scripts: one estimate, or a whole suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness import registry
from harness.api import Budget, Estimate
from harness.errors import UserError


def estimate(name: str, x: Any, y: Any, *, seed: int = 0, steps: int = 1000, batch_size: int = 64,
             device: str = "cpu", **params: Any) -> Estimate:
    """Estimate I(X;Y) (or the estimator's target) from paired samples with a registered estimator.

    >>> harness.estimate("infonce", x, y, steps=2000, critic="concat").value
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = (a[:, None] if a.ndim == 1 else a for a in (x, y))
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise UserError(f"x and y must be (n, d) arrays with the same n; got shapes {x.shape} and {y.shape}.")
    estimator = registry.get("estimator", name).instantiate(params)
    return estimator.fit_estimate(x, y, Budget(steps=steps, batch_size=batch_size), device, seed)


def run_suite(path: str | Path, *, store: str | Path = "results/mi-harness.sqlite", run: str | None = None,
              jobs: int = 1, device: str | None = None, report_dir: str | Path | None = None):
    """Run a suite file (resuming), optionally write its report, and return the summary table."""
    from harness import metrics, report, runner, suite
    from harness.executors import make_executor
    from harness.store import Store

    loaded = suite.load(path, device=device)
    results = Store(store)
    summary = runner.run(loaded, results, run, make_executor("local", jobs), show_progress=False)
    if report_dir is not None:
        report.build(results, summary.run, report_dir)
    return metrics.summarise(results.cells(summary.run))
