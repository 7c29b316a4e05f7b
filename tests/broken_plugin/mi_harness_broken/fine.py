"""A working plugin installed beside the broken ones."""

from pathlib import Path

from harness import Estimate, EstimatorSpec, SuiteSpec, hookimpl


class Zero:
    target = "mi"

    def __init__(self, params):
        self.params = params

    def fit_estimate(self, x, y, budget, device, seed):
        return Estimate(value=0.0)


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(name="fine_zero", summary="always 0 nats", build=Zero, cite="none"))


@hookimpl
def register_suites(register):
    register(SuiteSpec(name="fine_suite", summary="the working plugin's suite", path=Path(__file__).parent / "fine_suite.toml"))
