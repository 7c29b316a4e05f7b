"""The types plugins implement and receive.

A plugin registers *specs*; a spec builds an instance from validated parameters.
Instances follow the protocols below. Nothing here imports torch, so listing
plugins stays cheap.
"""

from __future__ import annotations

import importlib
import os
import typing
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"  # registry names, suite names and run names


class Params(BaseModel):
    """Base of every plugin's parameters: unknown keys are errors, defaults are visible, and no
    float may be NaN or infinite (`lr = inf`, `mi = nan` are refused when the suite or call is read)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def choices(cls, name: str) -> list[Any]:
        """The allowed values of a field with a fixed set of them (a Literal), else []."""
        return _literal_values(cls.model_fields[name].annotation)

    @classmethod
    def describe_fields(cls) -> str:
        """"k=3, metric='chebyshev' (chebyshev|euclidean)" for listings; "name=required" without a default."""
        parts = []
        for name, info in cls.model_fields.items():
            default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
            allowed = cls.choices(name)
            parts.append(f"{name}={default}" + (f" ({' | '.join(map(str, allowed))})" if len(allowed) > 1 else ""))
        return ", ".join(parts)


def _literal_values(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    return [value for argument in typing.get_args(annotation) for value in _literal_values(argument)]


class NoParams(Params):
    """For plugins without parameters."""


class Budget(BaseModel):
    """How much work one cell may do: estimators read steps and batch_size, encoders epochs.

    The suite file's [budget] table is this model plus its `samples` (harness.suite.BudgetTable).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: Annotated[int, Field(gt=0, le=1_000_000)] = 1000
    batch_size: Annotated[int, Field(gt=1, le=65_536)] = 64
    epochs: Annotated[int, Field(gt=0, le=100_000)] = 100


@dataclass(frozen=True)
class GroundTruth:
    """A known value (nats) with the standard error of its Monte-Carlo estimate (0 if exact)."""

    value: float
    stderr: float = 0.0


@dataclass
class Estimate:
    """What an estimator returns: the value in nats, how it got there, and anything worth keeping.

    interval: a 95% interval for the value from this one fit (low, high), or None where the
        estimator gives none; the report adds the spread over seeds.
    criterion: a number computed without the ground truth, higher for a better configuration
        (a variational bound on the validation split, a held-out log-likelihood); a suite's
        [select] table picks among configurations by it. None where the estimator has none.
    flags: sanity flags, name -> one sentence saying why the value should be read with care
        (e.g. {"at_cap": "within 0.1 nats of the log B cap ..."}); see docs/reliability.md.
    pmi: the pointwise MI the estimator learned, (rows, values): at rows `rows` of the samples it was
        given (held-out rows), its estimate of log p(x, y) / (p(x) p(y)). On a task that knows its
        pointwise MI (DensityRatioTask) the harness stores the RMSE against it (metric "pmi_rmse").
    """

    value: float
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    interval: tuple[float, float] | None = None
    criterion: float | None = None
    flags: dict[str, str] = field(default_factory=dict)
    pmi: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class Embeddings:
    """Frozen representations from an encoder: one row per dataset item (node, graph, image, series).

    features: the representation fixed in advance (the last epoch, or the encoder's own label-free rule such as
        DGI's best training loss): the cell's headline accuracy.
    checkpoints: the same training run's features at earlier epochs or steps (key -> one row per item); the harness
        scores each and reports the checkpoint-selection accuracies beside the headline (docs/reports.md). Empty:
        the encoder offers no selection, and only the headline is reported.
    untrained_baseline says the encoder was not trained (its architecture at random initialisation),
    so a paper's number for the trained method is not put beside it.
    """

    features: np.ndarray
    trajectory: list[tuple[int, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    untrained_baseline: bool = False
    checkpoints: dict[int, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """A distribution with known ground truth.

    measures "mi": sample(n, rng) -> (x, y) joint samples, ground_truth("mi") is I(X;Y).
    measures "divergence": sample(n, rng) -> (samples of P, samples of Q), and
    ground_truth(target) is D_f(P||Q) for the f-divergence named by target.
    An MI task may also answer an f-divergence target with the f-information
    D_f(P_XY || P_X P_Y). A task that cannot answer a target raises an exception whose
    message says so (ValueError is customary): the cell is recorded as failed with that
    message before any fitting, and the suite goes on.
    """

    measures: Literal["mi", "divergence"]
    dim_x: int
    dim_y: int

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...

    def ground_truth(self, target: str = "mi") -> GroundTruth: ...


@runtime_checkable
class DensityRatioTask(Task, Protocol):
    """An MI task that knows its pointwise MI: log p(x, y) / (p(x) p(y)), one value per pair."""

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class EntropyTask(Task, Protocol):
    """An MI task that knows the entropy of each side's marginal, in nats: entropy("x"), entropy("y").

    A side listed in discrete_sides is discrete (its entropy is Shannon's); the others are continuous
    (differential entropy)."""

    discrete_sides: tuple[str, ...]

    def entropy(self, side: str) -> float: ...


@runtime_checkable
class UsesEntropy(Protocol):
    """An estimator that needs the differential entropy of y (e.g. the Barber-Agakov bound).

    needs_entropy is True while it has none of its own; the harness then calls with_entropy_y(nats)
    with the entropy of y as the estimator sees it (after the suite's preprocessing) when the task is an
    EntropyTask with a continuous y, and fits the estimator it returns."""

    needs_entropy: bool

    def with_entropy_y(self, nats: float) -> Any: ...


@runtime_checkable
class Estimator(Protocol):
    """Estimates `target` ("mi", or an f-divergence name such as "kl") from paired samples (n, d) arrays."""

    target: str

    def fit_estimate(self, x: np.ndarray, y: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate: ...


@runtime_checkable
class TwoSampleEstimator(Protocol):
    """Estimates a divergence D_f(P || Q) from independent samples of P and of Q (divergence tasks)."""

    target: str

    def fit_divergence(self, p: np.ndarray, q: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate: ...


@runtime_checkable
class ChecksItsBudget(Protocol):
    """An estimator that can tell at load, before any cell runs, that n pairs of a task with dimensions
    (dim_x, dim_y) cannot serve a budget: e.g. fewer samples than two batches, or a model and batch that
    need more than `free_bytes`, the memory this machine has free beside the cell's data (None where it
    cannot tell). The suite then refuses to start, with this sentence (harness.suite.cell_problem)."""

    def budget_problem(self, n: int, budget: Budget, dim_x: int, dim_y: int, free_bytes: int | None
                       ) -> str | None: ...


Member = tuple[Any, np.ndarray, np.ndarray, int]
"""One cell of a group: (its estimator instance, x or p, y or q, its seed)."""

GroupResult = list[Estimate | BaseException]
"""One slot per member: its Estimate, or the exception fitting it alone would have raised."""


@runtime_checkable
class Groupable(Protocol):
    """An estimator whose cells may train together as one batched model.

    Cells are grouped when their group keys are equal (and not None) and so are the task's
    measure and dimensions, the sample size, the budget, the device and the preprocessing. The
    group fit must return what fitting each member alone with its seed would have returned
    (to float tolerance).
    """

    def group_key(self) -> Hashable | None: ...


@runtime_checkable
class GroupedEstimator(Groupable, Protocol):
    """Groupable on paired samples: fit_estimate for every member, trained as one model."""

    def fit_estimate_group(self, members: Sequence[Member], budget: Budget, device: str) -> GroupResult: ...


@runtime_checkable
class GroupedTwoSampleEstimator(Groupable, Protocol):
    """Groupable on divergence tasks: fit_divergence for every member, trained as one model."""

    def fit_divergence_group(self, members: Sequence[Member], budget: Budget, device: str) -> GroupResult: ...


@runtime_checkable
class Dataset(Protocol):
    """Real data for encoders, loaded from files under the data root.

    labels has one entry per item; splits maps "train"/"val"/"test" to item indices, or is
    empty where the reference paper used k-fold cross-validation; evaluation names the
    downstream protocol of harness.downstream. What the items are is `items` (below), each
    with its own typed fields.
    """

    items: Literal["images", "sequences", "graph", "graphs"]
    labels: np.ndarray
    splits: dict[str, np.ndarray]
    evaluation: str


@runtime_checkable
class ArrayDataset(Dataset, Protocol):
    """items "images" or "sequences": `inputs` holds one item per row (images N x C x H x W, series N x T x C)."""

    inputs: np.ndarray


@runtime_checkable
class NodeDataset(Dataset, Protocol):
    """items "graph": the items are the nodes of one graph."""

    features: np.ndarray  # nodes x features, float32
    adjacency: Any  # scipy.sparse matrix, nodes x nodes


class Graph(NamedTuple):
    """One small graph, an item of a "graphs" dataset."""

    node_features: np.ndarray  # nodes x features, float32
    edge_index: np.ndarray  # int64, 2 x edges, both directions of an undirected edge


@runtime_checkable
class GraphsDataset(Dataset, Protocol):
    """items "graphs": each item is a whole small graph."""

    graphs: list[Graph]


@runtime_checkable
class Encoder(Protocol):
    """Learns representations; the harness, not the encoder, evaluates them downstream."""

    def fit(self, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings: ...


PluginKind = Literal["estimator", "task", "encoder", "dataset", "suite"]
"""What a registered item is: the registry's kinds, one hook each (a Spec's `kind`)."""


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A registered plugin item; plugins make one with EstimatorSpec, TaskSpec, EncoderSpec or DatasetSpec.

    name: the registry name (letters, digits, '_', '.', '-'), unique per kind.
    summary: one line, shown literally by `mi-harness list`.
    build: a callable taking the validated params and returning an instance that follows the
        kind's protocol, or a lazy "module:attr" string imported only when an instance is built
        (so listing stays cheap).
    params: the harness.Params subclass of its parameters (default NoParams).
    cite: the paper or source to cite.
    published: reference results by dataset or task name, (mean, std), e.g. {"cora": (82.3, 0.6)}.
    """

    kind: PluginKind
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


@dataclass(frozen=True, kw_only=True)
class EstimatorSpec(Spec):
    """An estimator: build(params) returns an Estimator (and optionally TwoSampleEstimator, GroupedEstimator)."""

    kind: PluginKind = field(default="estimator", init=False)


@dataclass(frozen=True, kw_only=True)
class TaskSpec(Spec):
    """A task: build(params) returns a Task (optionally a DensityRatioTask)."""

    kind: PluginKind = field(default="task", init=False)


PublishedSelection = Literal["fixed", "best_on_test", "best_on_validation"]
PUBLISHED_SELECTIONS: tuple[str, ...] = typing.get_args(PublishedSelection)


@dataclass(frozen=True, kw_only=True)
class EncoderSpec(Spec):
    """An encoder: build(params) returns an Encoder.

    published_selection: how the code behind the `published` numbers chose the checkpoint it evaluated, so the
        harness can reproduce it beside the fixed protocol: "fixed" (a rule fixed in advance, as the headline),
        "best_on_test" (the checkpoint whose test accuracy is best: optimistic) or "best_on_validation" (the
        checkpoint best on labelled training data alone, which the harness computes by inner cross-validation).
    """

    kind: PluginKind = field(default="encoder", init=False)
    published_selection: PublishedSelection = "fixed"


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(Spec):
    """A dataset: build(params) returns an ArrayDataset, NodeDataset or GraphsDataset."""

    kind: PluginKind = field(default="dataset", init=False)


@dataclass(frozen=True, kw_only=True)
class SuiteSpec:
    """A suite file shipped by a plugin: its [suite] name, a one-line summary, the TOML file's path."""

    name: str
    summary: str
    path: str | os.PathLike[str]  # an absolute path; kept as a string
    cite: str = ""
    kind: Literal["suite"] = field(default="suite", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
