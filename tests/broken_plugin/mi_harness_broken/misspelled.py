"""A hook implementation whose name is one letter short of a hook."""

from harness import EstimatorSpec, hookimpl


@hookimpl
def register_estimator(register):
    register(EstimatorSpec(name="never_registered", summary="never seen", build=lambda params: None))
