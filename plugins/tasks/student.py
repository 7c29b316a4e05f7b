"""Multivariate Student-t with a shared dispersion: I = I_Gauss(dispersion) + h(d_x) + h(d_y) - h(d_x + d_y).

Built from entropies (MATH.md); the closed form printed by Arellano-Valle et al. 2013 is off.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from harness.api import Params
from plugins.tasks.base import MITask
from plugins.tasks.gaussian import sparse_correlation
from plugins.tasks.params import StudentParams


def standard_t_entropy(k: int, dof: float) -> float:
    """Differential entropy of the k-dimensional Student-t with identity dispersion."""
    half = (dof + k) / 2
    return float(-special.gammaln(half) + special.gammaln(dof / 2) + (k / 2) * np.log(dof * np.pi)
                 + half * (special.digamma(half) - special.digamma(dof / 2)))


def t_log_density(z: np.ndarray, precision: np.ndarray, logdet: float, dof: float) -> np.ndarray:
    k = z.shape[1]
    quadratic = np.einsum("ni,ij,nj->n", z, precision, z)
    return (special.gammaln((dof + k) / 2) - special.gammaln(dof / 2) - (k / 2) * np.log(dof * np.pi)
            - 0.5 * logdet - ((dof + k) / 2) * np.log1p(quadratic / dof))


class StudentTask(MITask):
    """Split multivariate Student-t; the dispersion defaults to params' sparse one (`student_t`)."""

    def __init__(self, params: Params, name: str = "student_t", dispersion: np.ndarray | None = None) -> None:
        super().__init__(name, params)
        self.dim_x, self.dim_y, self.dof = params.dim_x, params.dim_y, params.dof
        if dispersion is None:
            dispersion = sparse_correlation(params.dim_x, params.dim_y, params.pairs, params.strength)
        self.dispersion = np.asarray(dispersion, dtype=np.float64)
        self._cholesky = np.linalg.cholesky(self.dispersion)
        blocks = {"joint": slice(None), "x": slice(0, self.dim_x), "y": slice(self.dim_x, None)}
        self._blocks = {key: (np.linalg.inv(self.dispersion[s, s]), np.linalg.slogdet(self.dispersion[s, s])[1])
                        for key, s in blocks.items()}

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, self.dim_x + self.dim_y)) @ self._cholesky.T
        z /= np.sqrt(rng.chisquare(self.dof, size=(n, 1)) / self.dof)
        return z[:, : self.dim_x], z[:, self.dim_x :]

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        def log_p(key: str, z: np.ndarray) -> np.ndarray:
            return t_log_density(z, *self._blocks[key], self.dof)

        return log_p("joint", np.concatenate([x, y], axis=1)) - log_p("x", x) - log_p("y", y)

    def exact_mi(self) -> float:
        logdets = {key: logdet for key, (_, logdet) in self._blocks.items()}
        gaussian = 0.5 * (logdets["x"] + logdets["y"] - logdets["joint"])
        h = lambda k: standard_t_entropy(k, self.dof)  # noqa: E731
        return float(gaussian + h(self.dim_x) + h(self.dim_y) - h(self.dim_x + self.dim_y))


def build_student(params: StudentParams) -> StudentTask:
    return StudentTask(params)
