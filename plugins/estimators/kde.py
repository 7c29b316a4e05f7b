"""Kernel-density plug-in MI: H(X) + H(Y) - H(X, Y) with Gaussian kernels and leave-one-out entropies.

Each side is standardised per dimension first (MI is invariant under an affine map of each coordinate, so
nothing is lost, and one scalar bandwidth then suits every coordinate of a space). In a space of dimension d
holding the n points z_i, the density at z_i leaves z_i out and the entropy is its resubstitution estimate:
    q_{-i}(z_i) = 1/(n - 1) sum_{j != i} N(z_i; z_j, h^2 I),      H_hat = -(1/n) sum_i log q_{-i}(z_i).
The bandwidth h is chosen for each of the three spaces (x, y, joint) separately:
- "scott": Scott's rule for unit variances, h = n^(-1/(d + 4)) (Scott 1992, Multivariate Density Estimation);
- "cv": likelihood cross-validation, the multiple of Scott's h on SCOTT_MULTIPLES that maximises the
  leave-one-out log-likelihood (1/n) sum_i log q_{-i}(z_i) = -H_hat, so cv picks the smallest entropy estimate
  on the grid, for the cost of the extra exponentials only (the distances are shared).
Cost: O(n^2 d) time over the three spaces; memory O(n) per row: the n x n kernel matrix is never held, only
blocks of CHUNK_ELEMENTS entries (32 MB of float64, about 100 MB with the temporaries, at any n).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.api import Budget, Estimate
from harness.python_api import refuse_constant_columns
from plugins.estimators.nonneural import half_sample_interval
from plugins.estimators.paired_samples import InvalidSamples, paired_samples

BANDWIDTH_RULES = ("scott", "cv")
SCOTT_MULTIPLES = 2.0 ** np.arange(-2.0, 1.5, 0.5)  # 0.25, 0.35, ..., 2 times Scott's bandwidth
CHUNK_ELEMENTS = 4_000_000
MAX_PAIRS = 20_000  # O(n^2): at this n a 1+1 fit took 6 s (scott) to 65 s (cv with its 20 halves) on one core
MIN_PAIRS = 4


def scott_bandwidth(n: int, dim: int) -> float:
    return float(n ** (-1.0 / (dim + 4)))


def loo_log_densities(z: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """log q_{-i}(z_i) for each bandwidth (rows) and point (columns), by blocks of rows.

    Each row's kernel sum is taken relative to its nearest other point, whose term is then exp(0) = 1, so an
    isolated point never underflows to log 0.
    """
    from scipy.spatial.distance import cdist

    n, dim = z.shape
    rows = max(1, CHUNK_ELEMENTS // n)
    scaled = np.empty((min(rows, n), n))
    log_sums = np.empty((len(bandwidths), n))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        squared = cdist(z[start:stop], z, metric="sqeuclidean")
        squared[np.arange(stop - start), np.arange(start, stop)] = np.inf  # leave the point itself out
        nearest = squared.min(axis=1)
        squared -= nearest[:, None]
        block = scaled[: stop - start]
        for b, h in enumerate(bandwidths):
            np.multiply(squared, -0.5 / h**2, out=block)
            np.exp(block, out=block)
            log_sums[b, start:stop] = np.log(block.sum(axis=1)) - 0.5 * nearest / h**2
    normaliser = np.log(n - 1) + 0.5 * dim * np.log(2 * np.pi * np.asarray(bandwidths) ** 2)
    return log_sums - normaliser[:, None]


def loo_entropy(z: np.ndarray, bandwidth: float) -> float:
    return float(-loo_log_densities(z, np.array([bandwidth])).mean())


def fitted_entropy(z: np.ndarray, rule: str) -> tuple[float, float, float]:
    """(entropy, bandwidth, its multiple of Scott's) for one space, the bandwidth chosen by `rule`."""
    scott = scott_bandwidth(*z.shape)
    multiples = SCOTT_MULTIPLES if rule == "cv" else np.array([1.0])
    mean_log_likelihood = loo_log_densities(z, scott * multiples).mean(axis=1)
    best = int(np.argmax(mean_log_likelihood))
    return float(-mean_log_likelihood[best]), float(scott * multiples[best]), float(multiples[best])


def standardised_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked pairs, each column centred and scaled to unit variance; too many pairs are refused."""
    x, y = paired_samples(x, y, min_n=MIN_PAIRS)
    refuse_constant_columns(x, "x")  # a constant column has no spread to scale by
    refuse_constant_columns(y, "y")
    if x.shape[0] > MAX_PAIRS:
        raise InvalidSamples(
            f"kde got {x.shape[0]} pairs; its cost grows like n^2, so it takes at most {MAX_PAIRS}: estimate on "
            "a random subsample, or use ksg."
        )
    return (x - x.mean(axis=0)) / x.std(axis=0), (y - y.mean(axis=0)) / y.std(axis=0)


def mi_at_bandwidths(x: np.ndarray, y: np.ndarray, bandwidths: dict[str, float]) -> float:
    """H(X) + H(Y) - H(X, Y) with the three bandwidths fixed (standardised x and y)."""
    return (loo_entropy(x, bandwidths["x"]) + loo_entropy(y, bandwidths["y"])
            - loo_entropy(np.hstack([x, y]), bandwidths["xy"]))


def kde_mi_standardised(x: np.ndarray, y: np.ndarray, bandwidth: str = "scott") -> tuple[float, dict[str, Any]]:
    if bandwidth not in BANDWIDTH_RULES:
        raise InvalidSamples(f"unknown bandwidth rule {bandwidth!r}; valid rules: {', '.join(BANDWIDTH_RULES)}.")
    fits = {name: fitted_entropy(z, bandwidth) for name, z in (("x", x), ("y", y), ("xy", np.hstack([x, y])))}
    entropies = {name: fit[0] for name, fit in fits.items()}
    value = entropies["x"] + entropies["y"] - entropies["xy"]
    diagnostics = {
        "bandwidth_rule": bandwidth,
        "bandwidths": {name: fit[1] for name, fit in fits.items()},
        "scott_multiples": {name: fit[2] for name, fit in fits.items()},
        "entropies": entropies,
        "n": x.shape[0],
    }
    return float(value), diagnostics


def kde_mi(x: np.ndarray, y: np.ndarray, bandwidth: str = "scott") -> tuple[float, dict[str, Any]]:
    """KDE plug-in MI in nats of the raw pairs (standardised here)."""
    return kde_mi_standardised(*standardised_pairs(x, y), bandwidth)


def _edge_flags(diagnostics: dict[str, Any]) -> dict[str, str]:
    """Only cv can stand at an end of the grid: Scott's rule is its multiple 1."""
    edges = (SCOTT_MULTIPLES[0], SCOTT_MULTIPLES[-1])
    at_edge = [name for name, multiple in diagnostics["scott_multiples"].items() if multiple in edges]
    if not at_edge:
        return {}
    return {"bandwidth_at_grid_edge": (
        f"cross-validation chose an end of the bandwidth grid ({SCOTT_MULTIPLES[0]:g} or {SCOTT_MULTIPLES[-1]:g} "
        f"times Scott's) for {', '.join(at_edge)}: the likelihood may rise further outside it.")}


class KDE:
    """The KDE plug-in as a harness Estimator. The value is deterministic (budget and device unused); the
    seed only picks the random halves of its 95% interval (nonneural.half_sample_interval; each half keeps
    the full sample's standardisation and its three bandwidths, so the halves estimate the same smoothed
    quantity, as the histogram keeps its bins; interval_resamples = 0 gives none). No criterion: the
    leave-one-out likelihood that cv maximises is per space, and is not a score of the MI estimate."""

    target = "mi"

    def __init__(self, params: Any) -> None:
        self.bandwidth = str(params.bandwidth)
        self.interval_resamples = int(params.interval_resamples)

    def fit_estimate(self, x: np.ndarray, y: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate:
        x, y = standardised_pairs(x, y)
        value, diagnostics = kde_mi_standardised(x, y, self.bandwidth)
        bandwidths = diagnostics["bandwidths"]
        interval, about = half_sample_interval(
            lambda a, b: mi_at_bandwidths(a, b, bandwidths), x, y, value, self.interval_resamples, seed
        )
        return Estimate(value=value, trajectory=[], diagnostics={**diagnostics, **about}, interval=interval,
                        flags=_edge_flags(diagnostics))
