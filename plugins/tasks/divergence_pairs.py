"""Divergence tasks: two distributions P, Q with a known log density ratio and D_f(P || Q)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from harness.api import GroundTruth
from harness.errors import UserError
from plugins.tasks import fdiv, gaussian_math
from plugins.tasks.base import MC_SAMPLES, cached_ground_truth, mc_seed, mean_and_stderr
from plugins.tasks.params import GaussianPairParams


class GaussianPairTask:
    """P = N(0, I_d), Q = N(mean_shift 1_d, scale_ratio^2 I_d).

    Closed forms for KL, reverse KL, Jeffrey, squared Hellinger, Pearson and Neyman chi2
    (+inf where the integral diverges) and alpha-divergences; Monte Carlo under Q otherwise."""

    measures: Literal["mi", "divergence"] = "divergence"

    def __init__(self, params: GaussianPairParams) -> None:
        self.name, self.params = "gaussian_pair", params
        self.dim_x = self.dim_y = params.dim
        self.shift, self.scale = params.mean_shift, params.scale_ratio

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p = rng.standard_normal((n, self.dim_x))
        q = self.shift + self.scale * rng.standard_normal((n, self.dim_x))
        return p, q

    def log_density_ratio(self, z: np.ndarray) -> np.ndarray:
        log_p = -0.5 * np.sum(z**2, axis=1)
        log_q = -0.5 * np.sum(((z - self.shift) / self.scale) ** 2, axis=1) - self.dim_x * np.log(self.scale)
        return log_p - log_q

    def ground_truth(self, target: str = "kl") -> GroundTruth:
        key = (self.name, self.params.model_dump_json(), target)
        return cached_ground_truth(key, lambda: self._compute(target))

    def _compute(self, target: str) -> GroundTruth:
        if target == "mi":
            raise UserError(f"task {self.name!r} is a divergence task: name an f-divergence target "
                            "(such as 'kl', 'tv' or 'alpha=0.5'), not 'mi'.")
        divergence = fdiv.resolve(target)
        d = self.dim_x
        exact = gaussian_math.f_divergence(divergence, np.zeros(d), np.eye(d),
                                           np.full(d, self.shift), self.scale**2 * np.eye(d))
        if exact is not None:
            return GroundTruth(float(exact))
        rng = np.random.default_rng(mc_seed(self.name, self.params.model_dump_json(), target))
        _, q = self.sample(MC_SAMPLES, rng)
        return mean_and_stderr(divergence.f_of_log_ratio(self.log_density_ratio(q)))


def build_gaussian_pair(params: GaussianPairParams) -> GaussianPairTask:
    return GaussianPairTask(params)
