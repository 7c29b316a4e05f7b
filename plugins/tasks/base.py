"""What every MI task shares: cached ground truths and f-information by Monte Carlo."""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from harness.api import GroundTruth, Params
from harness.errors import UserError
from plugins.tasks import fdiv

# Production Monte-Carlo sizes: MATH.md asks for >= 1e5 samples behind every MC ground truth.
MC_SAMPLES = 200_000
MC_CHUNK = 50_000

# One entry per (task name, params, target): a suite that builds the same task for every
# estimator and seed computes each ground truth once per process.
_GROUND_TRUTHS: dict[tuple[str, str, str], GroundTruth] = {}


def cached_ground_truth(key: tuple[str, str, str], compute) -> GroundTruth:
    if key not in _GROUND_TRUTHS:
        _GROUND_TRUTHS[key] = compute()
    return _GROUND_TRUTHS[key]


def mc_seed(*parts: str) -> int:
    """A stable seed per (task, params, target), so MC ground truths do not depend on call order."""
    return zlib.crc32("|".join(parts).encode())


def mean_and_stderr(values: np.ndarray) -> GroundTruth:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        # f = +inf on a set of positive probability: the divergence itself is infinite
        value = float(np.mean(values))
        return GroundTruth(value=value, stderr=0.0 if value == np.inf else float("nan"))
    return GroundTruth(value=float(values.mean()), stderr=float(values.std(ddof=1) / np.sqrt(len(values))))


SIDES = ("x", "y")


def checked_side(side: str) -> str:
    """`side` if it names a side of an MI task ("x" or "y"), else a UserError saying so."""
    if side not in SIDES:
        raise UserError(f"entropy side {side!r} is not one of {', '.join(SIDES)}: ask for the entropy of x or of y.")
    return side


class MITask:
    """Base of the MI tasks: subclasses give sample(), log_density_ratio() and, if known,
    the MI in closed form (`exact_mi`) or closed-form f-informations (`closed_form`)."""

    measures: Literal["mi", "divergence"] = "mi"
    name: str
    dim_x: int
    dim_y: int

    def __init__(self, name: str, params: Params) -> None:
        self.name = name
        self.params = params

    # -- to override -------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"task {self.name!r} has no known log density ratio.")

    def exact_mi(self) -> float | None:
        """I(X;Y) in closed form (or by deterministic quadrature), None if only Monte Carlo knows it."""
        return None

    def closed_form(self, divergence: fdiv.Target) -> float | None:
        """D_f(P_XY || P_X P_Y) in closed form for this f, None if unknown."""
        return None

    # -- shared ------------------------------------------------------------------------
    @property
    def params_key(self) -> str:
        return self.params.model_dump_json()

    def ground_truth(self, target: str = "mi") -> GroundTruth:
        key = (self.name, self.params_key, target)
        return cached_ground_truth(key, lambda: self._compute_ground_truth(target))

    def _compute_ground_truth(self, target: str) -> GroundTruth:
        if target == "mi":
            exact = self.exact_mi()
            return GroundTruth(float(exact)) if exact is not None else self.mc_mutual_information()
        divergence = fdiv.resolve(target, extra_valid=["mi"])
        if divergence.is_kl:
            return self.ground_truth("mi")
        exact = self.closed_form(divergence)
        if exact is not None:
            return GroundTruth(float(exact))
        return self.mc_f_information(divergence)

    def mc_mutual_information(self, n: int = MC_SAMPLES) -> GroundTruth:
        """I = E_{P_XY}[log r(x, y)], the mean pointwise MI over joint samples."""
        rng = np.random.default_rng(mc_seed(self.name, self.params_key, "mi"))
        values = np.concatenate([self.log_density_ratio(*self.sample(m, rng)) for m in _chunks(n)])
        return mean_and_stderr(values)

    def mc_f_information(self, divergence: fdiv.Target, n: int = MC_SAMPLES) -> GroundTruth:
        """D_f(P_XY || P_X P_Y) = E_{P_X P_Y}[f(r(x, y))] over independent product pairs."""
        rng = np.random.default_rng(mc_seed(self.name, self.params_key, divergence.label))
        values = []
        for m in _chunks(n):
            x, _ = self.sample(m, rng)
            _, y = self.sample(m, rng)
            values.append(divergence.f_of_log_ratio(self.log_density_ratio(x, y)))
        return mean_and_stderr(np.concatenate(values))


def _chunks(n: int) -> list[int]:
    return [min(MC_CHUNK, n - start) for start in range(0, n, MC_CHUNK)]


def check(condition: bool, message: str) -> None:
    """Raise a UserError with a sentence when a task's parameters are inconsistent."""
    if not condition:
        raise UserError(message)
