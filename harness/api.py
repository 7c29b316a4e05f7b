"""The types plugins implement and receive.

A plugin registers *specs*; a spec builds an instance from validated parameters.
Instances follow the protocols below. Nothing here imports torch, so listing
plugins stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Base of every plugin's parameters: unknown keys are errors, defaults are visible."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For plugins without parameters."""


class Budget(BaseModel):
    """How much work one cell may do. Estimators read steps and batch_size; encoders epochs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = 1000
    batch_size: int = 64
    epochs: int = 100


@dataclass(frozen=True)
class GroundTruth:
    """A known value (nats) with the standard error of its Monte-Carlo estimate (0 if exact)."""

    value: float
    stderr: float = 0.0


@dataclass
class Estimate:
    """What an estimator returns: the value in nats, how it got there, and anything worth keeping."""

    value: float
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Embeddings:
    """Frozen representations from an encoder: one row per dataset item (node, graph, image, series)."""

    features: np.ndarray
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """A distribution with known ground truth.

    kind "mi": sample(n, rng) -> (x, y) joint samples, ground_truth("mi") is I(X;Y).
    kind "divergence": sample(n, rng) -> (samples of P, samples of Q), and
    ground_truth(target) is D_f(P||Q) for the f-divergence named by target.
    An MI task may also answer an f-divergence target with the f-information
    D_f(P_XY || P_X P_Y).
    """

    kind: Literal["mi", "divergence"]
    dim_x: int
    dim_y: int

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...

    def ground_truth(self, target: str = "mi") -> GroundTruth: ...


@runtime_checkable
class Estimator(Protocol):
    """Estimates `target` ("mi", or an f-divergence name such as "kl") from samples.

    Estimators that take two independent samples (divergence tasks) also define
    fit_divergence(p, q, budget, device, seed) -> Estimate.
    """

    target: str

    def fit_estimate(
        self, x: np.ndarray, y: np.ndarray, budget: Budget, device: str, seed: int
    ) -> Estimate: ...


@runtime_checkable
class Dataset(Protocol):
    """Real data for encoders, loaded from files under the data root.

    kind says what the items are ("images", "sequences", "graph", "graphs");
    labels has one entry per item; splits maps "train"/"val"/"test" to item
    indices, or is empty where the reference paper used k-fold cross-validation;
    evaluation names the downstream protocol of harness.downstream.

    The items themselves, by kind: "images" and "sequences" hold `inputs`, an array
    with one item per row; "graph" holds `features` (nodes x features, float32) and
    `adjacency` (scipy.sparse, nodes x nodes); "graphs" holds `graphs`, a list of
    (node_features float32 array, edge_index int64 array of shape 2 x edges).
    """

    kind: Literal["images", "sequences", "graph", "graphs"]
    labels: np.ndarray
    splits: dict[str, np.ndarray]
    evaluation: str


@runtime_checkable
class Encoder(Protocol):
    """Learns representations; the harness, not the encoder, evaluates them downstream."""

    def fit(self, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings: ...


Kind = Literal["estimator", "task", "encoder", "dataset", "suite"]


@dataclass(frozen=True)
class Spec:
    """A registered plugin item.

    build is a callable taking the validated params, or a lazy "module:attr"
    string imported only when an instance is built (so listing stays cheap).
    published holds reference results, e.g. {"cora": (82.3, 0.6)} for an encoder.
    """

    kind: Kind
    name: str
    summary: str
    build: Callable[..., Any] | str
    params: type[Params] = NoParams
    cite: str = ""
    published: dict[str, tuple[float, float]] = field(default_factory=dict)

    def builder(self) -> Callable[..., Any]:
        if callable(self.build):
            return self.build
        module, _, attr = self.build.partition(":")
        return getattr(importlib.import_module(module), attr)

    def instantiate(self, params: Params | dict[str, Any] | None = None) -> Any:
        if not isinstance(params, Params):
            params = self.params(**(params or {}))
        return self.builder()(params)


def EstimatorSpec(**kw: Any) -> Spec:
    return Spec(kind="estimator", **kw)


def TaskSpec(**kw: Any) -> Spec:
    return Spec(kind="task", **kw)


def EncoderSpec(**kw: Any) -> Spec:
    return Spec(kind="encoder", **kw)


def DatasetSpec(**kw: Any) -> Spec:
    return Spec(kind="dataset", **kw)


def SuiteSpec(*, name: str, summary: str, path: str, cite: str = "") -> Spec:
    """A suite file shipped by a plugin; build is the path of its TOML file."""
    return Spec(kind="suite", name=name, summary=summary, build=lambda _params: path, cite=cite)
