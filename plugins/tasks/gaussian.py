"""Multivariate Gaussian tasks: I = 1/2 log(det S_xx det S_yy / det S) (MATH.md, Ground truths)."""

from __future__ import annotations

import numpy as np

from harness.api import Params
from plugins.tasks import gaussian_math
from plugins.tasks.base import MITask, check, checked_side
from plugins.tasks.fdiv import Target
from plugins.tasks.params import DenseParams, GaussianParams, HighMIParams, SparseParams, StaircaseParams


class GaussianTask(MITask):
    """(X, Y) ~ N(0, covariance), X the first dim_x coordinates."""

    def __init__(self, name: str, params: Params, covariance: np.ndarray, dim_x: int) -> None:
        super().__init__(name, params)
        covariance = np.asarray(covariance, dtype=np.float64)
        self.dim_x, self.dim_y = dim_x, covariance.shape[0] - dim_x
        try:
            self._cholesky = np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            check(False, f"task {name!r}: parameters {params.model_dump()} give a covariance matrix "
                  "that is not positive definite; weaken the correlations.")
        self.covariance = covariance
        self._product = _block_diagonal(covariance, dim_x)
        # log r(z) = c + 1/2 z^T (Sigma_prod^-1 - Sigma^-1) z
        self._quadratic = np.linalg.inv(self._product) - np.linalg.inv(covariance)
        self._constant = 0.5 * (np.linalg.slogdet(self._product)[1] - np.linalg.slogdet(covariance)[1])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, len(self.covariance))) @ self._cholesky.T
        return z[:, : self.dim_x], z[:, self.dim_x :]

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        z = np.concatenate([x, y], axis=1)
        return self._constant + 0.5 * np.einsum("ni,ij,nj->n", z, self._quadratic, z)

    def exact_mi(self) -> float:
        return float(self._constant)

    discrete_sides: tuple[str, ...] = ()

    def entropy(self, side: str) -> float:
        """h(X) or h(Y) in nats: 1/2 log det(2 pi e S) of that side's block of the covariance."""
        block = slice(0, self.dim_x) if checked_side(side) == "x" else slice(self.dim_x, None)
        covariance = self.covariance[block, block]
        return 0.5 * float(np.linalg.slogdet(2 * np.pi * np.e * covariance)[1])

    def closed_form(self, divergence: Target) -> float | None:
        zero = np.zeros(len(self.covariance))
        return gaussian_math.f_divergence(divergence, zero, self.covariance, zero, self._product)


def _block_diagonal(covariance: np.ndarray, dim_x: int) -> np.ndarray:
    product = covariance.copy()
    product[:dim_x, dim_x:] = 0.0
    product[dim_x:, :dim_x] = 0.0
    return product


def paired_covariance(rhos: np.ndarray, dim_x: int, dim_y: int) -> np.ndarray:
    """Unit variances, correlation rhos[i] between X_i and Y_i, all else independent."""
    covariance = np.eye(dim_x + dim_y)
    for i, rho in enumerate(rhos):
        covariance[i, dim_x + i] = covariance[dim_x + i, i] = rho
    return covariance


def rho_for_mi(mi: float, dim: int) -> float:
    """Per-coordinate correlation giving total MI `mi` over `dim` independent pairs (staircase)."""
    return float(np.sqrt(-np.expm1(-2.0 * mi / dim)))


def build_gaussian(params: GaussianParams) -> GaussianTask:
    rho = rho_for_mi(params.mi, params.dim)
    return GaussianTask("gaussian", params, paired_covariance([rho] * params.dim, params.dim, params.dim), params.dim)


def build_staircase(params: StaircaseParams) -> GaussianTask:
    rho = rho_for_mi(params.mi, params.dim)
    return GaussianTask("staircase", params, paired_covariance([rho] * params.dim, params.dim, params.dim), params.dim)


def build_high_mi(params: HighMIParams) -> GaussianTask:
    rho = rho_for_mi(params.mi_per_pair, 1)
    check(rho < 1.0, f"high_mi: mi_per_pair={params.mi_per_pair} nats is beyond float64 (use at most 18).")
    covariance = paired_covariance([rho] * params.pairs, params.pairs, params.pairs)
    return GaussianTask("high_mi", params, covariance, params.pairs)


def build_dense(params: DenseParams) -> GaussianTask:
    d = params.dim_x + params.dim_y
    covariance = np.full((d, d), params.correlation) + (1 - params.correlation) * np.eye(d)
    return GaussianTask("multinormal_dense", params, covariance, params.dim_x)


def sparse_correlation(dim_x: int, dim_y: int, pairs: int, strength: float) -> np.ndarray:
    """Beyond Normal's sparse latent-variable family with eta = lambda = strength, epsilon = 1:
    every variable has variance 1 + s^2 and (X_i, Y_i), i < pairs, share a latent of weight s."""
    check(pairs <= min(dim_x, dim_y), f"pairs={pairs} must be at most min(dim_x, dim_y)={min(dim_x, dim_y)}.")
    rho = strength**2 / (1 + strength**2)
    return paired_covariance([rho] * pairs, dim_x, dim_y)


def build_sparse(params: SparseParams) -> GaussianTask:
    covariance = sparse_correlation(params.dim_x, params.dim_y, params.pairs, params.strength)
    return GaussianTask("multinormal_sparse", params, covariance, params.dim_x)
