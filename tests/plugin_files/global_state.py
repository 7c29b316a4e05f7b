"""A one-file plugin written as third parties write them: it draws from the global generators,
reads torch's thread count, declines targets it cannot answer, and has a required parameter."""

import random

import numpy as np
import torch

from harness import Estimate, EstimatorSpec, GroundTruth, Params, TaskSpec, hookimpl


class GlobalDraws:
    """'Estimates' by drawing from Python's, numpy's and torch's global generators."""

    target = "mi"

    def __init__(self, params):
        self.params = params

    def fit_estimate(self, x, y, budget, device, seed):
        value = random.random() + float(np.random.rand()) + float(torch.rand(1))
        return Estimate(value=value, diagnostics={"threads": torch.get_num_threads()})


class RequiredParams(Params):
    k: int


class OnlyMI:
    """A 1-d Gaussian pair that knows its MI and declines every other target."""

    measures = "mi"
    dim_x = dim_y = 1

    def __init__(self, params):
        self.params = params

    def sample(self, n, rng):
        x = rng.standard_normal((n, 1))
        return x, 0.6 * x + 0.8 * rng.standard_normal((n, 1))

    def ground_truth(self, target="mi"):
        if target != "mi":
            raise ValueError(f"this task knows only its MI, not {target!r}")
        return GroundTruth(-0.5 * np.log(1 - 0.6**2))


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(name="global_draws", summary="draws from the global generators", build=GlobalDraws))
    register(EstimatorSpec(name="needs_k", summary="[k] nearest [bold]neighbours[/bold], literally",
                           params=RequiredParams, build=GlobalDraws))


@hookimpl
def register_tasks(register):
    register(TaskSpec(name="only_mi", summary="knows only its MI", build=OnlyMI))
