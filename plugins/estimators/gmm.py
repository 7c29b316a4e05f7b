"""Gaussian-mixture plug-in MI: fit q(x, y) to the pairs, then I(q) by Monte Carlo from the fitted model.

z = (x, y) is standardised per column (MI is invariant; it puts scikit-learn's absolute covariance ridge
reg_covar on a common scale) and fitted by EM with full covariances (sklearn.mixture.GaussianMixture), for
K = 1, ..., max_components; the K of lowest BIC is kept. A marginal of a Gaussian mixture is the mixture of
the components' marginal Gaussians (same weights, sub-vector of each mean, diagonal block of each covariance),
so q(x) and q(y) are exact, and
    I_hat = (1/m) sum_s [log q(x_s, y_s) - log q(x_s) - log q(y_s)],   (x_s, y_s) ~ q, s = 1..m,
with Monte-Carlo standard error sd / sqrt(m) (diagnostics["mc_stderr"]).

The interval is half-sampling (nonneural.half_sample_interval): each half refits a mixture with the full
sample's K and draws its own m Monte-Carlo samples. The spread of the halves then holds both errors of the
full estimate, the fit's sampling error (the half-sampling scaling makes a half's fit spread the
full-sample variance) and the Monte-Carlo error (each half's m draws err as much as the full estimate's), so
it covers more than value +- 1.96 mc_stderr, which speaks only of the MC error of one fitted model and, at
the default m, is a few times smaller. Cost: one EM fit at K on n/2 pairs per half, against max_components
fits for the estimate. Like every half-sampling interval it speaks of spread, not bias: a mixture that
cannot take the shape of the data (too few components for BIC to pay for) is off by more than it says.

No criterion: no pairs are held out (the fit uses all of them, and BIC already chose K on them), and the
in-sample likelihood of the fitted mixture rises with K whatever the MI, so it would not rank settings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.api import Budget, Estimate
from harness.python_api import refuse_constant_columns
from plugins.estimators.nonneural import half_sample_interval
from plugins.estimators.paired_samples import paired_samples

REG_COVAR = 1e-6  # scikit-learn's default ridge, here in units of the standardised columns
MC_CHUNK = 100_000  # Monte-Carlo draws evaluated at once: the (draws x components) table stays small
_HALVES_STREAM = 0x474D4D48  # "GMMH": the halves' fit and draw seeds come from (this, seed)


@dataclass(frozen=True)
class Mixture:
    """sum_k weights[k] N(means[k], covariances[k])."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def marginal(self, columns: slice) -> Mixture:
        return Mixture(self.weights, self.means[:, columns], self.covariances[:, columns, columns])

    def log_density(self, points: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        dim = points.shape[1]
        per_component = np.empty((points.shape[0], len(self.weights)))
        for k, (weight, mean, covariance) in enumerate(zip(self.weights, self.means, self.covariances, strict=True)):
            cholesky = np.linalg.cholesky(covariance)
            whitened = solve_triangular(cholesky, (points - mean).T, lower=True)
            log_det = 2.0 * np.sum(np.log(np.diag(cholesky)))
            squared = np.sum(whitened**2, axis=0)
            per_component[:, k] = np.log(weight) - 0.5 * (squared + log_det + dim * np.log(2 * np.pi))
        top = per_component.max(axis=1, keepdims=True)  # log-sum-exp; scipy's costs 6 ms per 50 000 rows here
        return top[:, 0] + np.log(np.exp(per_component - top).sum(axis=1))

    def sample(self, m: int, rng: np.random.Generator) -> np.ndarray:
        labels = rng.choice(len(self.weights), size=m, p=self.weights / self.weights.sum())
        noise = rng.standard_normal((m, self.means.shape[1]))
        points = np.empty_like(noise)
        for k, (mean, covariance) in enumerate(zip(self.means, self.covariances, strict=True)):
            rows = labels == k
            points[rows] = mean + noise[rows] @ np.linalg.cholesky(covariance).T
        return points


def mixture_mi(mixture: Mixture, dim_x: int, m: int, rng: np.random.Generator) -> tuple[float, float]:
    """(I(q), its Monte-Carlo standard error) from m draws of q, the pointwise MI evaluated in chunks."""
    from threadpoolctl import threadpool_limits

    x_side, y_side = mixture.marginal(slice(0, dim_x)), mixture.marginal(slice(dim_x, None))
    pmi = np.empty(m)
    with threadpool_limits(limits=1):  # as in fit_mixture: BLAS threads on shared cores made the draws 3x slower
        for start in range(0, m, MC_CHUNK):
            z = mixture.sample(min(MC_CHUNK, m - start), rng)
            pmi[start:start + len(z)] = (mixture.log_density(z) - x_side.log_density(z[:, :dim_x])
                                         - y_side.log_density(z[:, dim_x:]))
    return float(pmi.mean()), float(pmi.std(ddof=1) / np.sqrt(m))


def fit_mixture(z: np.ndarray, components: int, seed: int) -> tuple[Mixture, Any]:
    """EM fit with full covariances; returns the Mixture and scikit-learn's fitted model."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    model = GaussianMixture(n_components=components, covariance_type="full", reg_covar=REG_COVAR,
                            random_state=seed % 2**32)
    # One thread, as the harness's workers run torch: the k-means initialisation's OpenMP threads, fighting
    # over shared cores, made a fit on 5000 pairs 10x slower (0.5 s against 0.05 s).
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as diagnostics["converged"] and a flag
        model.fit(z)
    return Mixture(model.weights_, model.means_, model.covariances_), model


def fit_by_bic(z: np.ndarray, max_components: int, seed: int) -> tuple[Mixture, Any, list[float]]:
    """The fit of lowest BIC among K = 1..max_components, its model, and every K's BIC."""
    fits = [fit_mixture(z, k, seed) for k in range(1, max_components + 1)]
    bics = [float(model.bic(z)) for _, model in fits]
    best = int(np.argmin(bics))
    return *fits[best], bics


def standardised_joint(x: np.ndarray, y: np.ndarray, max_components: int) -> tuple[np.ndarray, int]:
    """(z, dim_x): z = (x, y) checked, each column centred and scaled to unit variance. It needs
    2 max_components pairs at least, so that every half of the interval can still hold the largest mixture."""
    x, y = paired_samples(x, y, min_n=max(4, 2 * max_components))
    refuse_constant_columns(x, "x")  # a constant column has no spread to scale by
    refuse_constant_columns(y, "y")
    z = np.hstack([x, y])
    return (z - z.mean(axis=0)) / z.std(axis=0), x.shape[1]


def gmm_mi(x: np.ndarray, y: np.ndarray, max_components: int = 8, mc_samples: int = 50_000, seed: int = 0
           ) -> tuple[float, dict[str, Any]]:
    """Mixture plug-in MI in nats; the seed drives EM's initialisation and the Monte-Carlo draws."""
    z, dim_x = standardised_joint(x, y, max_components)
    return _gmm_mi_standardised(z, dim_x, max_components, mc_samples, seed)


def _gmm_mi_standardised(z: np.ndarray, dim_x: int, max_components: int, mc_samples: int, seed: int
                         ) -> tuple[float, dict[str, Any]]:
    mixture, model, bics = fit_by_bic(z, max_components, seed)
    value, stderr = mixture_mi(mixture, dim_x, mc_samples, np.random.default_rng(int(seed) % 2**64))
    diagnostics = {
        "components": len(mixture.weights),
        "bic_by_components": bics,
        "converged": bool(model.converged_),
        "em_iterations": int(model.n_iter_),
        "train_mean_log_likelihood": float(model.score(z)),
        "mc_samples": mc_samples,
        "mc_stderr": stderr,
        "n": z.shape[0],
    }
    return value, diagnostics


def _flags(diagnostics: dict[str, Any], max_components: int) -> dict[str, str]:
    flags = {}
    if max_components > 1 and diagnostics["components"] == max_components:
        flags["components_at_max"] = (f"BIC was lowest at the largest mixture tried ({max_components} components): "
                                      "a larger max_components may fit the pairs better.")
    if not diagnostics["converged"]:
        flags["not_converged"] = (f"EM stopped at its iteration cap ({diagnostics['em_iterations']}) before "
                                  "converging: the mixture, and its MI, may be off.")
    return flags


class GMM:
    """The Gaussian-mixture plug-in as a harness Estimator (budget and device unused). The seed drives EM's
    initialisation, the Monte-Carlo draws and the random halves of the 95% interval (see the module
    docstring; interval_resamples = 0 gives none, the Monte-Carlo error alone stays in diagnostics)."""

    target = "mi"

    def __init__(self, params: Any) -> None:
        self.max_components = int(params.max_components)
        self.mc_samples = int(params.mc_samples)
        self.interval_resamples = int(params.interval_resamples)

    def fit_estimate(self, x: np.ndarray, y: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate:
        z, dim_x = standardised_joint(x, y, self.max_components)
        value, diagnostics = _gmm_mi_standardised(z, dim_x, self.max_components, self.mc_samples, seed)
        components = diagnostics["components"]
        half_seeds = np.random.default_rng([_HALVES_STREAM, int(seed) % 2**64])

        def on_half(a: np.ndarray, b: np.ndarray) -> float:
            half_seed = int(half_seeds.integers(2**32))
            mixture, _ = fit_mixture(np.hstack([a, b]), components, half_seed)
            return mixture_mi(mixture, dim_x, self.mc_samples, np.random.default_rng(half_seed))[0]

        interval, about = half_sample_interval(
            on_half, z[:, :dim_x], z[:, dim_x:], value, self.interval_resamples, seed
        )
        return Estimate(value=value, trajectory=[], diagnostics={**diagnostics, **about}, interval=interval,
                        flags=_flags(diagnostics, self.max_components))
