"""Beyond Normal's Gaussian latent-variable family and its dense Student-t (Czyz et al. 2023,
arXiv:2306.11078): closed forms, through the Gaussian and Student-t tasks."""

from __future__ import annotations

import numpy as np

from plugins.tasks.base import check
from plugins.tasks.gaussian import GaussianTask
from plugins.tasks.params import LVMParams, StudentDenseParams
from plugins.tasks.student import StudentTask


def lvm_correlation(p: LVMParams) -> np.ndarray:
    """Correlation matrix of the latent model: every variable gets alpha U_all and epsilon times its own
    noise; X_i (Y_i) adds beta U_X (beta U_Y); for i < pairs X_i and Y_i share lambda Z_i, and the
    other variables add eta times a further noise of their own instead."""
    check(p.pairs <= min(p.dim_x, p.dim_y), f"pairs={p.pairs} must be at most min(dim_x, dim_y)="
          f"{min(p.dim_x, p.dim_y)}.")
    eta = p.strength if p.eta is None else p.eta
    d = p.dim_x + p.dim_y
    covariance = np.full((d, d), p.alpha**2)
    covariance[: p.dim_x, : p.dim_x] += p.beta**2
    covariance[p.dim_x :, p.dim_x :] += p.beta**2
    own = np.full(d, p.epsilon**2 + eta**2)
    pairs = np.arange(p.pairs)
    own[pairs] = own[p.dim_x + pairs] = p.epsilon**2 + p.strength**2
    covariance[pairs, p.dim_x + pairs] += p.strength**2
    covariance[p.dim_x + pairs, pairs] += p.strength**2
    covariance[np.diag_indices(d)] += own
    scale = np.sqrt(np.diag(covariance))
    return covariance / np.outer(scale, scale)


def build_lvm(params: LVMParams) -> GaussianTask:
    return GaussianTask("multinormal_lvm", params, lvm_correlation(params), params.dim_x)


def build_student_dense(params: StudentDenseParams) -> StudentTask:
    d = params.dim_x + params.dim_y
    dispersion = np.full((d, d), params.correlation) + (1 - params.correlation) * np.eye(d)
    check(np.linalg.eigvalsh(dispersion)[0] > 0, f"student_dense: correlation={params.correlation} gives a "
          f"dispersion that is not positive definite in {d} dimensions; use at least {-1 / (d - 1):.4g}.")
    return StudentTask(params, name="student_dense", dispersion=dispersion)
