"""Registers one estimator, then fails inside its hook."""

from harness import EstimatorSpec, hookimpl


@hookimpl
def register_estimators(register):
    register(EstimatorSpec(name="half_registered", summary="registered before the failure",
                           build=lambda params: None))
    raise RuntimeError("the plugin's configuration file is missing")
