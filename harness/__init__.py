"""mi-harness: benchmark and compare mutual-information estimators and MI-maximising encoders."""

from harness.api import (
    Budget,
    DatasetSpec,
    Embeddings,
    EncoderSpec,
    Estimate,
    EstimatorSpec,
    GroundTruth,
    NoParams,
    Params,
    Spec,
    SuiteSpec,
    TaskSpec,
)
from harness.errors import UserError
from harness.hookspecs import hookimpl
from harness.python_api import estimate, pmi_profile, run_suite

__all__ = [
    "Budget", "DatasetSpec", "Embeddings", "EncoderSpec", "Estimate", "EstimatorSpec", "GroundTruth",
    "NoParams", "Params", "Spec", "SuiteSpec", "TaskSpec", "UserError", "estimate", "hookimpl", "pmi_profile",
    "run_suite",
]
