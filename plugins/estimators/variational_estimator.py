"""The variational estimator: the shared critic and training loop, and one builder per objective.

Imported only when a spec of plugins.estimators.variational is built (its "module:build_<name>"
strings), so registering and listing the estimators never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from harness import Budget, Estimate, Params
from harness.errors import UserError
from harness.training import Checkpoints, heldout_start, sample_problem, train_critics
from plugins.estimators import objectives
from plugins.estimators.critics import CRITICS, TwoSampleCritic, stack_critics
from plugins.estimators.divergences import divergence, target_name
from plugins.estimators.marginals import gaussianize
from plugins.estimators.variational import (
    BaselineParams,
    CriticParams,
    FGANParams,
    InterpolatedParams,
    MINEParams,
    NCEParams,
    SMILEParams,
)

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

    def budget_problem(self, n: int, budget: Budget) -> str | None:
        """Why n samples cannot train this critic under `budget`, before any cell runs (harness.api.ChecksItsBudget)."""
        p = self.params
        return sample_problem(n, budget, Checkpoints(p.checkpoint_every, p.validation, p.value_batch)
                              if p.checkpoint_every else None)

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
    valued_on = _valuing_batch(len(members[0][1]), budget, p)
    for (_, objective), result in zip(built, unsorted, strict=True):
        cap = objective.cap_nats(valued_on) if isinstance(objective, objectives.Capped) else None
        if isinstance(result, Estimate) and cap is not None:
            # The report draws this line for this estimator only: the core names no bound.
            result.diagnostics["cap_nats"] = cap
    return unsorted


def _valuing_batch(n: int, budget: Budget, params: CriticParams) -> int:
    """How many pairs each batch value behind the estimate saw: the training batch when streaming or
    valuing the last critic; the value batch (or the whole held-out half) when a checkpoint is chosen."""
    if not params.checkpoint_every:
        return budget.batch_size
    return min(params.value_batch or n, n - heldout_start(n, budget))


# One builder per registered name. Each objective factory is a lambda of its own builder, so
# the estimators of one name share its code object: _sharing_key relies on that to let members
# with equal parameter-free objectives share one instance in a group.


def build_infonce(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.InfoNCE())


def build_nwj(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.NWJ())


def build_mine(params: MINEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.MINE(p.ma_rate))


def build_js(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.JS())


def build_smile(params: SMILEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.SMILE(p.tau))


def build_tuba(params: BaselineParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.TUBA(d, p.baseline_hidden))


def build_interpolated(params: InterpolatedParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.Interpolated(d, p.alpha, p.baseline_hidden))


def build_nce(params: NCEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, d: objectives.NCE(p.negatives))


def build_fgan(params: FGANParams) -> VariationalEstimator:
    table_row = divergence(params.divergence, params.alpha)
    return VariationalEstimator(params, lambda _p, _dim: objectives.FGAN(table_row),
                                target=target_name(params.divergence, params.alpha), two_sample=True)
