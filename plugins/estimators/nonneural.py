"""Non-neural MI estimators to compare neural ones with: KSG, Gaussian (CCA) and histogram plug-in.

The implementations live in knn.py, cca.py and histogram.py and are imported only when built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness import EstimatorSpec, Params, hookimpl


class KSGParams(Params):
    k: int = Field(3, ge=1, description="neighbours in the joint space")
    metric: Literal["chebyshev", "euclidean"] = Field(
        "chebyshev",
        description="norm inside each marginal space; the joint norm is the max of the two. "
        "chebyshev (the paper's) uses a k-d tree; euclidean is exact brute force, O(n^2)",
    )


class GaussianCCAParams(Params):
    ridge: float = Field(1e-6, ge=0.0, description="added to the diagonal of each standardised covariance block")
    bias_correction: bool = Field(False, description="subtract the exact Wishart bias (about dim_x dim_y / 2n)")


class HistogramParams(Params):
    bins: int = Field(0, ge=0, description="bins per dimension (>= 2); 0 = round(n^(1/(1 + dim_x + dim_y)))")
    binning: Literal["quantile", "uniform"] = Field(
        "quantile", description="equal-mass bins from empirical quantiles, or equal-width bins over [min, max]"
    )
    miller_madow: bool = Field(False, description="add the Miller-Madow first-order bias correction")


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
