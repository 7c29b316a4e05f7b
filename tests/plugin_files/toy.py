"""A one-file plugin for the core's tests: a task and estimators with exactly known behaviour."""

import os
import time

import numpy as np

from harness import Estimate, EstimatorSpec, GroundTruth, Params, TaskSpec, hookimpl


class ToyTaskParams(Params):
    dim: int = 1
    rho: float = 0.5


class ToyGaussian:
    """Bivariate Gaussian with correlation rho per dimension: I = -dim/2 log(1 - rho^2)."""

    measures = "mi"

    def __init__(self, params: ToyTaskParams):
        self.params = params
        self.dim_x = self.dim_y = params.dim

    def sample(self, n, rng):
        x = rng.standard_normal((n, self.params.dim))
        y = self.params.rho * x + np.sqrt(1 - self.params.rho**2) * rng.standard_normal((n, self.params.dim))
        return x, y

    def ground_truth(self, target="mi"):
        return GroundTruth(-0.5 * self.params.dim * np.log(1 - self.params.rho**2))


class CorrelationParams(Params):
    sleep_s: float = 0.0
    behaviour: str = "ok"  # ok | raise | nan | exit


class CorrelationEstimator:
    """Plug-in Gaussian MI from the per-dimension sample correlation; can misbehave on request."""

    target = "mi"

    def __init__(self, params: CorrelationParams):
        self.params = params

    def fit_estimate(self, x, y, budget, device, seed):
        time.sleep(self.params.sleep_s)
        if self.params.behaviour == "raise":
            raise RuntimeError("asked to fail")
        if self.params.behaviour == "exit":
            os._exit(3)
        if self.params.behaviour == "nan":
            return Estimate(value=float("nan"))
        r = np.array([np.corrcoef(x[:, i], y[:, i])[0, 1] for i in range(x.shape[1])])
        noise = np.random.default_rng(seed).normal(0, 1e-3)
        return Estimate(value=float(-0.5 * np.log(1 - r**2).sum() + noise),
                        trajectory=[(1, 0.0), (2, float(r[0]))], diagnostics={"steps": 2})


@hookimpl
def register_tasks(register):
    register(TaskSpec(name="toy_gaussian", summary="correlated Gaussian", params=ToyTaskParams, build=ToyGaussian))


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(name="toy_correlation", summary="plug-in Gaussian MI", params=CorrelationParams,
                           build=CorrelationEstimator))
