"""Marginal Gaussianisation (normal scores): a per-dimension monotone map fitted on training rows.

Each dimension goes through its empirical CDF, fitted on the first `fit_rows` rows only, then the
standard normal quantile. A strictly increasing map of each coordinate leaves the MI unchanged,
and the map removes heavy tails and monotone distortions before a critic sees the data (the
copula of the data is all that remains). Held-out rows are mapped by interpolating the fitted
CDF between training values; beyond the training range they take its extreme ranks.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri


def gaussianize(a: np.ndarray, fit_rows: int) -> np.ndarray:
    """Normal scores of every column of `a` (n, d) under the empirical CDF of a[:fit_rows]."""
    if not 1 <= fit_rows <= len(a):
        raise ValueError(f"fit the marginal maps on 1..{len(a)} rows, got {fit_rows}")
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    for j in range(a.shape[1]):
        values, counts = np.unique(a[:fit_rows, j], return_counts=True)
        # Mid-ranks: tied training values share one rank, and ranks stay inside (0, 1).
        ranks = (np.cumsum(counts) - counts / 2) / fit_rows
        out[:, j] = ndtri(np.interp(a[:, j], values, ranks))
    return out
