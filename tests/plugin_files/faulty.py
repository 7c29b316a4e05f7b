"""A one-file plugin for the fault tests: an estimator and a task that misbehave the way real plugins do."""

import os
import sys
from typing import Literal

import numpy as np

from harness import Estimate, EstimatorSpec, GroundTruth, Params, TaskSpec, hookimpl


class FaultyTaskParams(Params):
    rho: float = 0.5
    behaviour: Literal["ok", "raise", "nan_samples"] = "ok"


class FaultyGaussian:
    """One correlated Gaussian pair, I = -1/2 log(1 - rho^2); can fail while sampling."""

    measures = "mi"
    dim_x = dim_y = 1

    def __init__(self, params: FaultyTaskParams):
        self.params = params

    def sample(self, n, rng):
        if self.params.behaviour == "raise":
            raise ValueError("the sampler was asked to fail")
        x = rng.standard_normal((n, 1))
        y = self.params.rho * x + np.sqrt(1 - self.params.rho**2) * rng.standard_normal((n, 1))
        if self.params.behaviour == "nan_samples":
            x[::7] = np.nan
        return x, y

    def ground_truth(self, target="mi"):
        return GroundTruth(-0.5 * np.log(1 - self.params.rho**2))


class FaultyParams(Params):
    behaviour: Literal["ok", "inf", "-inf", "none", "probe", "exit"] = "ok"
    attempts_log: str = ""  # "exit": append one line per attempt here before dying


class FaultyEstimator:
    """Plug-in Gaussian MI from the sample correlation, or one chosen way of going wrong."""

    target = "mi"

    def __init__(self, params: FaultyParams):
        self.params = params

    def fit_estimate(self, x, y, budget, device, seed):
        behaviour = self.params.behaviour
        if behaviour == "exit":
            with open(self.params.attempts_log, "a") as log:
                log.write(f"{os.getpid()}\n")
            os._exit(3)
        if behaviour in ("inf", "-inf"):
            return Estimate(value=float(behaviour))
        if behaviour == "none":
            return Estimate(value=None)
        r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
        diagnostics = {}
        if behaviour == "probe":  # where the cell ran, and whether that process ever loaded the store
            diagnostics = {"pid": os.getpid(), "store_imported": "harness.store" in sys.modules}
        return Estimate(value=float(-0.5 * np.log(1 - r**2)), diagnostics=diagnostics)


@hookimpl
def register_tasks(register):
    register(TaskSpec(name="faulty_gaussian", summary="correlated Gaussian that can fail to sample",
                      params=FaultyTaskParams, build=FaultyGaussian))


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(name="faulty", summary="plug-in Gaussian MI that can misbehave on request",
                           params=FaultyParams, build=FaultyEstimator))
