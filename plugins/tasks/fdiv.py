"""The tasks' view of an f-divergence target: a canonical name, alpha, and f evaluated on log ratios.

The f functions come from plugins.estimators.divergences (one table of f for the whole project), imported
only when a divergence target is asked for, so listing tasks stays free of torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.errors import UserError


@dataclass(frozen=True)
class Target:
    """An f-divergence named by a target string: `name` is canonical ("kl", "alpha", ...)."""

    name: str
    alpha: float | None
    label: str
    f: Callable[[np.ndarray], np.ndarray]

    @property
    def is_kl(self) -> bool:
        return self.name == "kl"

    def f_of_log_ratio(self, log_ratio: np.ndarray) -> np.ndarray:
        """f(exp(log r)), with exp(-inf) = 0 where the supports differ."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return np.asarray(self.f(np.exp(np.asarray(log_ratio, dtype=np.float64))), dtype=np.float64)


def resolve(target: str, extra_valid: list[str] | None = None) -> Target:
    """Parse a target string with plugins.estimators.divergences.parse_target; unknown -> UserError naming valid ones."""
    from plugins.estimators.divergences import (
        parse_target,  # imports torch: only when a divergence is asked for
    )

    try:
        row = parse_target(target)
    except UserError as error:
        if extra_valid:
            raise UserError(f"{error} An MI task also answers: {', '.join(extra_valid)}.") from error
        raise
    return Target(name=row.name, alpha=row.alpha, label=row.target, f=row.f)
