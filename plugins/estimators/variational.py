"""Variational MI and f-divergence estimators: a critic, a training rule, and harness.training.

Each estimator is a (Params, objective) pair; the critic and the loop are shared, so every
bound sees the same score matrix and the same optimiser.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from harness import Budget, Estimate, EstimatorSpec, Params, hookimpl
from harness.errors import UserError
from harness.training import Checkpoints, heldout_start, train_critics
from plugins.divergences import DIVERGENCE_NAMES, divergence, target_name
from plugins.estimators import objectives
from plugins.estimators.critics import CRITICS, Activation, TwoSampleCritic, stack_critics
from plugins.estimators.marginals import gaussianize

Positive = Annotated[int, Field(gt=0)]


class CriticParams(Params):
    """The critic, its optimiser and its data protocol; defaults are the staircase protocol of
    Poole et al. (2019).

    marginals = "gaussianize" maps each dimension of x and y to normal scores fitted on the
    training rows (plugins.estimators.marginals; MI tasks only). checkpoint_every > 0 holds back
    `validation` of the training half and reports the held-out value of the checkpoint best on it
    (harness.training.Checkpoints); both splits are then valued in batches of `value_batch` rows
    (0: each split as one batch). Without checkpoints, the last critic is valued in training batches.
    """

    critic: Literal["separable", "concat", "bilinear"] = "separable"
    hidden: Positive = 256
    layers: Annotated[int, Field(ge=0)] = 2
    embed_dim: Positive = 32
    activation: Activation = "relu"
    lr: Annotated[float, Field(gt=0)] = 5e-4
    marginals: Literal["raw", "gaussianize"] = "raw"
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.2
    value_batch: Annotated[int, Field(ge=0)] = 0


class MINEParams(CriticParams):
    ma_rate: Annotated[float, Field(gt=0, le=1)] = 0.01


class SMILEParams(CriticParams):
    tau: Annotated[float, Field(gt=0)] = 5.0


class BaselineParams(CriticParams):
    baseline_hidden: Positive = 64


class InterpolatedParams(BaselineParams):
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5


class NCEParams(CriticParams):
    negatives: Annotated[float, Field(gt=0)] = 1.0


class FGANParams(CriticParams):
    divergence: Literal[DIVERGENCE_NAMES] = "kl"  # type: ignore[valid-type]
    alpha: float | None = None

    @model_validator(mode="after")
    def _alpha_only_for_alpha(self) -> FGANParams:
        if (self.divergence == "alpha") != (self.alpha is not None):
            raise ValueError("give alpha (not 0 or 1) exactly when divergence = 'alpha'")
        return self


ObjectiveFactory = Callable[[Params, int], nn.Module]
Member = tuple[Any, np.ndarray, np.ndarray, int]  # (estimator, x, y, seed)


class VariationalEstimator:
    """fit_estimate trains a critic on pairs; fit_divergence (f-GAN only) on two samples."""

    def __init__(self, params: CriticParams, objective: ObjectiveFactory, target: str = "mi",
                 two_sample: bool = False):
        self.params = params
        self.objective = objective
        self.target = target
        if two_sample:
            self.fit_divergence = self._fit_divergence
            self.fit_divergence_group = self._fit_divergence_group

    def fit_estimate(self, x: np.ndarray, y: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate:
        return self._fit(self.fit_estimate_group, x, y, budget, device, seed)

    def _fit_divergence(self, p: np.ndarray, q: np.ndarray, budget: Budget, device: str, seed: int) -> Estimate:
        return self._fit(self._fit_divergence_group, p, q, budget, device, seed)

    def _marginal_maps(self, x: np.ndarray, y: np.ndarray, budget: Budget) -> tuple[np.ndarray, np.ndarray]:
        if self.params.marginals == "raw":
            return x, y
        fit_rows = heldout_start(len(x), budget)  # the training rows only: held-out rows never shape the map
        # float32 first, as training sees the data: the runner hands a group float32 and a lone cell
        # float64, and ranks of the two could differ where float32 rounding makes ties.
        return (gaussianize(np.asarray(a, dtype=np.float32), fit_rows) for a in (x, y))

    def _fit(self, group, x, y, budget, device, seed) -> Estimate:
        # A group of one: the same batched layers as in a group, so a cell's numbers do not depend
        # on whether the runner grouped it (bit for bit on CPU; tests/test_grouping.py).
        (result,) = group([(self, x, y, seed)], budget, device)
        if isinstance(result, BaseException):
            raise result
        return result

    def _build(self, critic_class, dim_x: int, dim_y: int, seed: int) -> tuple[nn.Module, nn.Module]:
        p = self.params
        torch.manual_seed(seed)
        critic = critic_class(dim_x, dim_y, p.hidden, p.layers, p.embed_dim, p.activation)
        return critic, self.objective(p, dim_y)

    def group_key(self) -> Hashable:
        """Cells whose estimators share this key can train as one batched model: same critic, same lr.

        The objective may differ between members (InfoNCE beside NWJ beside MINE).
        """
        p = self.params
        return ("variational-critic", *(getattr(p, name) for name in CriticParams.model_fields))

    def fit_estimate_group(self, members: Sequence[Member], budget: Budget, device: str) -> list[Estimate | Exception]:
        """fit_estimate for each (estimator, x, y, seed), trained as one model: same numbers as one by one."""
        members = [(estimator, *estimator._marginal_maps(x, y, budget), seed) for estimator, x, y, seed in members]
        return _fit_group(members, budget, device, lambda e: CRITICS[e.params.critic])

    def _fit_divergence_group(self, members: Sequence[Member], budget: Budget, device: str
                              ) -> list[Estimate | Exception]:
        if self.params.marginals != "raw":
            # Separate maps for the two samples would change D_f(P || Q); only pairs keep MI under them.
            raise UserError("marginals = 'gaussianize' is for MI tasks; a two-sample divergence task needs 'raw'.")
        return _fit_group(members, budget, device, lambda e: TwoSampleCritic)

    def _sharing_key(self) -> Hashable:
        factory = getattr(self.objective, "__code__", self.objective)
        return factory, type(self.params), self.params.model_dump_json()


def _fit_group(members: Sequence[Member], budget: Budget, device: str, critic_class) -> list[Estimate | Exception]:
    keys = {estimator.group_key() if isinstance(estimator, VariationalEstimator) else None
            for estimator, *_ in members}
    if len(keys) != 1 or None in keys:
        raise ValueError("a group needs variational estimators with one critic architecture and learning rate")
    built = [estimator._build(critic_class(estimator), x.shape[1], y.shape[1], seed)
             for estimator, x, y, seed in members]
    # Members with equal parameter-free objectives share one instance, called once on their
    # stacked scores; they are ordered next to each other and put back afterwards.
    shared: dict[Hashable, nn.Module] = {}
    order_of: dict[Hashable, int] = {}
    keyed = []
    for g, ((estimator, *_), (_, objective)) in enumerate(zip(members, built, strict=True)):
        stateless = next(objective.parameters(), None) is None
        key = estimator._sharing_key() if stateless else ("own", g)
        keyed.append((order_of.setdefault(key, len(order_of)), g))
        objective = shared.setdefault(key, objective)
        built[g] = (built[g][0], objective)
    order = [g for _, g in sorted(keyed)]
    critic = stack_critics([built[g][0] for g in order])
    p = members[0][0].params
    checkpoints = Checkpoints(p.checkpoint_every, p.validation, p.value_batch) if p.checkpoint_every else None
    results = train_critics(critic, [built[g][1] for g in order], [members[g][1] for g in order],
                            [members[g][2] for g in order], budget, device, [members[g][3] for g in order],
                            p.lr, checkpoints=checkpoints)
    unsorted: list[Estimate | Exception] = [None] * len(members)  # type: ignore[list-item]
    for position, g in enumerate(order):
        unsorted[g] = results[position]
    return unsorted


def _fgan(params: FGANParams) -> VariationalEstimator:
    table_row = divergence(params.divergence, params.alpha)
    return VariationalEstimator(params, lambda _p, _dim: objectives.FGAN(table_row),
                                target=target_name(params.divergence, params.alpha), two_sample=True)


ESTIMATORS = [
    ("infonce", "InfoNCE / CPC: multi-sample contrastive bound, capped at log B", CriticParams,
     lambda p, d: objectives.InfoNCE(), "van den Oord et al. 2018, arXiv:1807.03748"),
    ("nwj", "NWJ = MINE-f, the f-form of KL: unbiased, variance grows like e^I", CriticParams,
     lambda p, d: objectives.NWJ(), "Nguyen et al. 2010; Belghazi et al. 2018, arXiv:1801.04062"),
    ("mine", "MINE: Donsker-Varadhan value, moving-average corrected gradient", MINEParams,
     lambda p, d: objectives.MINE(p.ma_rate), "Belghazi et al. 2018, arXiv:1801.04062"),
    ("js", "Deep InfoMax JS objective, valued as NWJ(S + 1) (no -1/e offset)", CriticParams,
     lambda p, d: objectives.JS(), "Hjelm et al. 2019, arXiv:1808.06670; Poole et al. 2019"),
    ("smile", "SMILE: JS training, DV value with scores clipped to [-tau, tau]", SMILEParams,
     lambda p, d: objectives.SMILE(p.tau), "Song & Ermon 2020, arXiv:1910.06222"),
    ("tuba", "TUBA with a learned baseline a(y)", BaselineParams,
     lambda p, d: objectives.TUBA(d, p.baseline_hidden), "Poole et al. 2019, arXiv:1905.06922"),
    ("interpolated", "Interpolated bound between NWJ/TUBA (alpha=0) and InfoNCE (alpha=1)", InterpolatedParams,
     lambda p, d: objectives.Interpolated(d, p.alpha, p.baseline_hidden), "Poole et al. 2019, arXiv:1905.06922"),
    ("nce", "NCE: logistic joint-vs-marginal classifier, plug-in mean log-ratio", NCEParams,
     lambda p, d: objectives.NCE(p.negatives), "Gutmann & Hyvarinen 2010"),
]


@hookimpl
def register_estimators(register):
    """The variational MI bounds and the f-GAN family."""
    for name, summary, params, make_objective, cite in ESTIMATORS:
        register(EstimatorSpec(name=name, summary=summary, params=params, cite=cite,
                               build=partial(VariationalEstimator, objective=make_objective)))
    register(EstimatorSpec(
        name="fgan", summary="f-GAN lower bound of D_f (any f row); f-information on MI tasks",
        params=FGANParams, build=_fgan, cite="Nowozin et al. 2016, arXiv:1606.00709"))



