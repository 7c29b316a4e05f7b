"""A plugin shipped by a third party: MI of the Gaussian copula (rank-normalised CCA), and a
Gaussian task with its log density ratio to check it on.

Registered through the `mi_harness` entry point; nothing in mi-harness names it.
Its tests (tests/test_contract.py) are harness.testing's contract checks.
"""

from typing import Annotated

import numpy as np
from pydantic import Field
from scipy import stats

from harness import Estimate, EstimatorSpec, GroundTruth, Params, TaskSpec, hookimpl


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


class GaussianParams(Params):
    dim: Annotated[int, Field(gt=0)] = 2
    rho: Annotated[float, Field(gt=-1, lt=1)] = 0.5


class ExampleGaussian:
    """Standard Gaussians X, Y with correlation rho between X_i and Y_i: I = -dim/2 log(1 - rho^2)."""

    measures = "mi"

    def __init__(self, params: GaussianParams):
        self.rho = params.rho
        self.dim_x = self.dim_y = params.dim

    def sample(self, n, rng):
        x, noise = rng.standard_normal((2, n, self.dim_x))
        return x, self.rho * x + np.sqrt(1 - self.rho**2) * noise

    def log_density_ratio(self, x, y):
        r = self.rho
        quadratic = (r**2 * x**2 - 2 * r * x * y + r**2 * y**2) / (2 * (1 - r**2))
        return np.sum(-0.5 * np.log(1 - r**2) - quadratic, axis=1)

    def ground_truth(self, target="mi"):
        if target not in ("mi", "kl"):
            raise ValueError(f"example_gaussian knows I(X;Y) (target 'mi' or 'kl'), not {target!r}.")
        return GroundTruth(float(-0.5 * self.dim_x * np.log(1 - self.rho**2)))


@hookimpl
def register_tasks(register):
    """The correlated Gaussian."""
    register(TaskSpec(name="example_gaussian", summary="correlated Gaussian pairs (third-party example)",
                      params=GaussianParams, build=ExampleGaussian, cite="example"))


@hookimpl
def register_estimators(register):
    """The Gaussian-copula estimator."""
    register(EstimatorSpec(name="example_copula", summary="Gaussian-copula MI (third-party example)",
                           params=CopulaParams, build=GaussianCopulaMI, cite="example"))
