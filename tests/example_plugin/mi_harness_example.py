"""An estimator shipped by a third party: MI of the Gaussian copula (rank-normalised CCA).

Registered through the `mi_harness` entry point; nothing in mi-harness names it.
"""

import numpy as np
from scipy import stats

from harness import Estimate, EstimatorSpec, Params, hookimpl


class CopulaParams(Params):
    ridge: float = 1e-6


class GaussianCopulaMI:
    target = "mi"

    def __init__(self, params: CopulaParams):
        self.params = params

    def fit_estimate(self, x, y, budget, device, seed):
        def normal_scores(a):
            return stats.norm.ppf(stats.rankdata(a, axis=0) / (len(a) + 1))

        z = np.hstack([normal_scores(x), normal_scores(y)])
        cov = np.cov(z, rowvar=False) + self.params.ridge * np.eye(z.shape[1])
        dx = x.shape[1]
        _, logdet = np.linalg.slogdet(cov)
        _, logdet_x = np.linalg.slogdet(cov[:dx, :dx])
        _, logdet_y = np.linalg.slogdet(cov[dx:, dx:])
        return Estimate(value=float(0.5 * (logdet_x + logdet_y - logdet)))


@hookimpl
def register_estimators(register):
    """The Gaussian-copula estimator."""
    register(EstimatorSpec(name="example_copula", summary="Gaussian-copula MI (third-party example)",
                           params=CopulaParams, build=GaussianCopulaMI, cite="example"))
