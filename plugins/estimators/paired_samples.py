"""Checks shared by the non-neural estimators: two finite float arrays with one row per joint sample."""

from __future__ import annotations

import numpy as np

from harness.errors import UserError


class InvalidSamples(UserError, ValueError):
    """Samples an estimator cannot use; a ValueError too, so numeric callers can catch it as one."""


def as_sample_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """One side of the pairs as a float64 (n, d) matrix; a 1-D array is one column."""
    arr = np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidSamples(f"{name} has dtype {arr.dtype}; pass a numeric array of shape (n, d).")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidSamples(f"{name} has shape {arr.shape}; pass an array of shape (n,) or (n, d).")
    if arr.shape[1] == 0:
        raise InvalidSamples(f"{name} has shape {arr.shape}: it needs at least one column.")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
        raise InvalidSamples(f"{name} has {bad} row(s) with NaN or infinite values; every value must be finite.")
    return arr


def paired_samples(x: np.ndarray, y: np.ndarray, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate joint samples (x_i, y_i): same number of rows, finite, at least min_n rows."""
    x, y = as_sample_matrix(x, "x"), as_sample_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise InvalidSamples(
            f"x has {x.shape[0]} rows but y has {y.shape[0]}; row i of x and row i of y must be one joint sample."
        )
    if x.shape[0] < min_n:
        raise InvalidSamples(f"got {x.shape[0]} joint samples; this estimator needs at least {min_n}.")
    return x, y
