"""Non-neural MI estimators to compare neural ones with: KSG, Gaussian (CCA), histogram, KDE and mixture plug-ins.

The implementations live in knn.py, cca.py, histogram.py, kde.py and gmm.py and are imported only when built.
What they share lives here: the 95% interval every one of them puts on its estimate (`mi_interval`), and the
half-sampling standard error of those without a variance formula, all but CCA (`half_sample_interval`).
scipy is imported inside the function, so listing stays cheap.

Half-sampling (`half_sample_interval`): R random halves of the n pairs, each m = floor(n/2) pairs drawn
without replacement (so no pair is ever duplicated: a bootstrap's repeated points are at distance 0, which
breaks the k-NN counts of KSG), each estimated with the same settings as the full sample. The scaling, for an
estimator whose fluctuation is asymptotically a mean, T_n ~ theta + (1/n) sum psi(z_i), with Var T_n ~ s^2/n:
given the sample, the mean of m of the n values psi_i drawn without replacement has variance
(s^2/m) (n - m)/(n - 1) (the finite-population factor 1 - m/n up to n/(n-1)). For m = n/2 that is
s^2/(n - 1): the spread of the half-sample estimates *is* the full-sample variance, with no factor -- the
2 by which halving n raises the variance is exactly cancelled by the finite-population factor 1/2. For odd n
the factor is m/(n - m). This is the delete-d jackknife with d = n/2 (Shao & Wu 1989, Ann. Statist. 17:1176,
its variance estimate carries r/d, here 1). With R random halves the variance is the sample variance (ddof 1)
of their R estimates, an estimate with R - 1 degrees of freedom, so the half-width is the t(R - 1) 97.5%
quantile (2.09 for R = 20, 1.96 as R grows) times the standard error, around the full-sample estimate.

What it does not do: it estimates the spread, not the bias. The interval is centred on the full estimate,
so it covers the truth only as far as the estimator's bias is small beside its standard error: KSG in
several dimensions and the histogram (discretisation gap, count bias) under-cover, badly where the bias
dominates; docs/methods.md#intervals has the measured coverage. Where the variance falls faster than 1/n
(a plug-in at exact independence, variance ~ 1/n^2) the halves overstate the SE, about 2x. The mean of the
half-sample estimates is reported (`half_sample_mean`): for a bias c/n it differs from the full estimate by
about c/n, the full estimate's own bias -- a hint, not subtracted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

from harness import EstimatorSpec, Params, hookimpl

Z_95 = 1.959963984540054  # standard normal 97.5% quantile
_HALF_SAMPLING_STREAM = 0x48414C46  # "HALF": the halves' generator is seeded by (this, seed), not by seed alone


def _not_one(resamples: int) -> int:
    if resamples == 1:
        raise ValueError("interval_resamples = 1 gives no spread; use 0 (no interval) or at least 2")
    return resamples


IntervalResamples = Annotated[
    int,
    Field(ge=0, le=10_000, description="random halves (without replacement) for the 95% interval's standard "
          "error; each costs one estimate on n/2 pairs. 0 = no interval"),
    AfterValidator(_not_one),
]


def mi_interval(value: float, low: float, high: float) -> tuple[float, float]:
    """(low, high) with low raised to 0 (MI is never negative), or to the estimate where that is below 0.

    Raising the low end to 0 loses no coverage; stopping at a negative estimate keeps the estimate inside.
    """
    return float(max(low, min(value, 0.0))), float(high)


def half_sample_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    value: float,
    resamples: int,
    seed: int,
) -> tuple[tuple[float, float] | None, dict[str, Any]]:
    """A 95% interval for `value` = statistic(x, y) from `resamples` random halves (see the module docstring).

    statistic must be the estimator with every setting fixed as for the full sample (the histogram's bin
    count, KSG's k). Returns (interval, diagnostics); the interval is None when resamples is 0 or a half is
    too small for the statistic (the diagnostics then say why). Reproducible: the halves come from a
    generator seeded by (a fixed stream tag, seed), so a fit with the same seed draws the same halves.
    """
    from scipy.special import stdtrit

    from plugins.estimators.paired_samples import InvalidSamples

    if resamples == 0:
        return None, {}
    if resamples < 2:
        raise ValueError(f"resamples is {resamples}; use 0 (no interval) or at least 2.")
    x, y = np.asarray(x), np.asarray(y)  # the statistic has checked them on the full sample
    n = x.shape[0]
    m = n // 2
    rng = np.random.default_rng([_HALF_SAMPLING_STREAM, int(seed) % 2**64])
    halves = np.empty(resamples)
    try:
        for r in range(resamples):
            rows = rng.permutation(n)[:m]
            halves[r] = statistic(x[rows], y[rows])
    except InvalidSamples as err:
        return None, {"interval_method": "half-sampling", "interval_skipped": f"a half of {m} pairs: {err}"}
    se = float(np.sqrt(m / (n - m) * np.var(halves, ddof=1)))
    multiplier = float(stdtrit(resamples - 1, 0.975))
    diagnostics = {
        "interval_method": "half-sampling",
        "interval_resamples": resamples,
        "interval_se": se,
        "interval_multiplier": multiplier,
        "half_sample_mean": float(np.mean(halves)),
    }
    return mi_interval(value, value - multiplier * se, value + multiplier * se), diagnostics


class KSGParams(Params):
    k: int = Field(3, ge=1, description="neighbours in the joint space")
    metric: Literal["chebyshev", "euclidean"] = Field(
        "chebyshev",
        description="norm inside each marginal space; the joint norm is the max of the two. "
        "chebyshev (the paper's) uses a k-d tree; euclidean is exact brute force, O(n^2)",
    )
    interval_resamples: IntervalResamples = 20


class GaussianCCAParams(Params):
    ridge: float = Field(1e-6, ge=0.0, description="added to the diagonal of each standardised covariance block")
    bias_correction: bool = Field(False, description="subtract the exact Wishart bias (about dim_x dim_y / 2n)")


class HistogramParams(Params):
    bins: int = Field(0, ge=0, description="bins per dimension (>= 2); 0 = round(n^(1/(1 + dim_x + dim_y)))")
    binning: Literal["quantile", "uniform"] = Field(
        "quantile", description="equal-mass bins from empirical quantiles, or equal-width bins over [min, max]"
    )
    miller_madow: bool = Field(False, description="add the Miller-Madow first-order bias correction")
    interval_resamples: IntervalResamples = 20


class KDEParams(Params):
    bandwidth: Literal["scott", "cv"] = Field(
        "scott",
        description="Gaussian kernel width per space (x, y, joint) on standardised data: Scott's n^(-1/(d+4)), "
        "or the multiple of it (0.25 to 2) of highest leave-one-out likelihood",
    )
    interval_resamples: IntervalResamples = 20


class GMMParams(Params):
    max_components: int = Field(8, ge=1, le=100, description="BIC picks the mixture size among 1..max_components")
    mc_samples: int = Field(50_000, ge=100, le=5_000_000,
                            description="draws from the fitted mixture for the Monte-Carlo MI")
    interval_resamples: IntervalResamples = 20


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(
        name="ksg",
        summary="Kraskov-Stoegbauer-Grassberger k-NN estimator 1 (max-norm, exact k-d tree counts)",
        params=KSGParams,
        build="plugins.estimators.knn:KSG",
        cite="Kraskov, Stoegbauer, Grassberger 2004, Phys. Rev. E 69, 066138 (arXiv:cond-mat/0305641)",
    ))
    register(EstimatorSpec(
        name="gaussian_cca",
        summary="MI of the Gaussian with the sample covariance, -1/2 sum log(1 - rho_i^2) over canonical correlations",
        params=GaussianCCAParams,
        build="plugins.estimators.cca:GaussianCCA",
        cite="Hotelling 1936, Biometrika 28:321; Cover & Thomas 2006, Elements of Information Theory, sec. 8.5",
    ))
    register(EstimatorSpec(
        name="histogram",
        summary="plug-in MI of a joint histogram (per-dimension quantile or equal-width bins), optional Miller-Madow",
        params=HistogramParams,
        build="plugins.estimators.histogram:Histogram",
        cite="Miller 1955, Note on the bias of information estimates; Paninski 2003, Neural Comput. 15:1191",
    ))
    register(EstimatorSpec(
        name="kde",
        summary="kernel-density plug-in H(X) + H(Y) - H(X,Y), Gaussian kernels, leave-one-out entropies",
        params=KDEParams,
        build="plugins.estimators.kde:KDE",
        cite="Moon, Rajagopalan, Lall 1995, Phys. Rev. E 52:2318; Scott 1992, Multivariate Density Estimation",
    ))
    register(EstimatorSpec(
        name="gmm",
        summary="Gaussian-mixture plug-in: mixture fit by EM (size by BIC), MI of the fit by Monte Carlo",
        params=GMMParams,
        build="plugins.estimators.gmm:GMM",
        cite="Schwarz 1978, Ann. Statist. 6:461 (BIC); Cover & Thomas 2006, Elements of Information Theory, ch. 8",
    ))
