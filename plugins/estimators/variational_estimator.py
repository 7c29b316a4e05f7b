"""The variational estimator: the shared critic and training loop, and one builder per objective.

Imported only when a spec of plugins.estimators.variational is built (its "module:build_<name>"
strings), so registering and listing the estimators never imports torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from harness import Budget, Estimate, Params
from harness.errors import UserError
from harness.training import Checkpoints, heldout_start, sample_problem, train_critics
from plugins.estimators import densities, objectives
from plugins.estimators.critics import CRITICS, TwoSampleCritic, stack_critics
from plugins.estimators.divergences import divergence, target_name
from plugins.estimators.marginals import gaussianize
from plugins.estimators.variational import (
    BAParams,
    BaselineParams,
    CriticParams,
    DensityParams,
    FGANParams,
    FLOParams,
    InterpolatedParams,
    MINEParams,
    NCEParams,
    SMILEParams,
    TrainingParams,
)

ObjectiveFactory = Callable[[Params, int, int], nn.Module]  # (params, dim_x, dim_y) -> objective
CriticFactory = Callable[..., nn.Module]  # critics.CRITICS' constructor signature
Member = tuple[Any, np.ndarray, np.ndarray, int]  # (estimator, x, y, seed)


class VariationalEstimator:
    """fit_estimate trains a critic on pairs; fit_divergence (f-GAN only) on two samples."""

    def __init__(self, params: TrainingParams, objective: ObjectiveFactory, target: str = "mi",
                 two_sample: bool = False, critic: CriticFactory | None = None):
        self.params = params
        self.objective = objective
        self.target = target
        self.critic = critic or CRITICS[params.critic]
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
        fit_rows = heldout_start(len(x), budget, self.params.heldout)  # the training rows only: held-out rows never shape the map
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

    def _build(self, critic_class: CriticFactory, dim_x: int, dim_y: int, seed: int) -> tuple[nn.Module, nn.Module]:
        p = self.params
        torch.manual_seed(seed)
        critic = critic_class(dim_x, dim_y, p.hidden, p.layers, getattr(p, "embed_dim", 0), p.activation)
        return critic, self.objective(p, dim_x, dim_y)

    def budget_problem(self, n: int, budget: Budget, dim_x: int, dim_y: int,
                       free_bytes: int | None) -> str | None:
        """Why n pairs of (dim_x, dim_y) cannot train this critic under `budget`, before any cell runs: too few
        samples, or more memory than the free_bytes beside the data (harness.api.ChecksItsBudget)."""
        p = self.params
        problem = sample_problem(n, budget, Checkpoints(p.checkpoint_every, p.validation, p.value_batch)
                                 if p.checkpoint_every else None, p.heldout)
        if problem or free_bytes is None:
            return problem
        parameters = self.parameter_count(dim_x, dim_y)
        needed = training_bytes(p, parameters, dim_x, dim_y, budget.batch_size, _valuing_batch(n, budget, p))
        if needed <= free_bytes:
            return None
        return (f"training this critic needs about {needed / 2**30:.1f} GiB beside the data (its "
                f"{parameters:,} parameters with their gradients and Adam moments, and one "
                f"batch's activations and scores), and this machine has {free_bytes / 2**30:.1f} GiB free beside "
                "the data; use a smaller hidden, fewer layers, or a smaller batch_size or value_batch.")

    def parameter_count(self, dim_x: int, dim_y: int) -> int:
        """The parameters of the critic and of the objective's own networks, counted on the meta device."""
        with torch.device("meta"):
            critic, objective = self._build(self.critic, dim_x, dim_y, seed=0)
        return sum(p.numel() for module in (critic, objective) for p in module.parameters())

    def group_key(self) -> Hashable:
        """Cells whose estimators share this key can train as one batched model: same critic, same lr.

        The objective may differ between members (InfoNCE beside NWJ beside MINE, CLUB beside L1Out).
        """
        p = self.params
        shared = CriticParams if isinstance(p, CriticParams) else DensityParams
        critic = (self.critic.func.__name__, tuple(sorted(self.critic.keywords.items()))) if isinstance(
            self.critic, functools.partial) else self.critic.__name__
        return ("variational-critic", critic, *(getattr(p, name) for name in shared.model_fields))

    def fit_estimate_group(self, members: Sequence[Member], budget: Budget, device: str) -> list[Estimate | Exception]:
        """fit_estimate for each (estimator, x, y, seed), trained as one model: same numbers as one by one."""
        members = [(estimator, *estimator._marginal_maps(x, y, budget), seed) for estimator, x, y, seed in members]
        return _fit_group(members, budget, device, lambda e: e.critic)

    def _fit_divergence_group(self, members: Sequence[Member], budget: Budget, device: str
                              ) -> list[Estimate | Exception]:
        if self.params.marginals != "raw":
            # Separate maps for the two samples would change D_f(P || Q); only pairs keep MI under them.
            raise UserError("marginals = 'gaussianize' is for MI tasks; a two-sample divergence task needs 'raw'.")
        return _fit_group(members, budget, device, lambda e: TwoSampleCritic)

    def _sharing_key(self) -> Hashable:
        factory = getattr(self.objective, "__code__", self.objective)
        return factory, type(self.params), self.params.model_dump_json()


FLOAT_BYTES = 4
# Training holds each parameter six times: the member's own critic and its copy stacked into the trained
# model, the gradient, Adam's two moments and the snapshot of the best checkpoint.
PARAMETER_COPIES = 6
SCORE_COPIES = 3  # the B x B scores and the bound's temporaries on them (InfoNCE measured about 2.4)


def training_bytes(p: TrainingParams, parameters: int, dim_x: int, dim_y: int, batch: int, value_rows: int) -> int:
    """About the peak memory training one critic of `parameters` parameters holds beside its data: the
    parameters, and the larger of a training step (activations kept for backward) and a valuing batch of
    value_rows (no gradients)."""
    step = max(_activation_floats(p, dim_x, dim_y, batch, training=True),
               _activation_floats(p, dim_x, dim_y, value_rows, training=False))
    return FLOAT_BYTES * (PARAMETER_COPIES * parameters + step)


def _activation_floats(p: TrainingParams, dim_x: int, dim_y: int, rows: int, training: bool) -> int:
    """Floats alive at once while `rows` pairs pass through the critic: in training, the batch with its
    copies and each layer's output and activation kept for backward; without gradients, about three
    layers at a time. A concat critic runs its network on all rows^2 pairs; an autoregressive density
    model runs its network once per coordinate of each row (counted as dim_x + dim_y positions per row)."""
    concat = getattr(p, "critic", None) == "concat"
    if isinstance(p, DensityParams):
        positions, inputs, out = rows * (dim_x + dim_y), [dim_x + 2 * (dim_x + dim_y)], 3 * p.components
    elif concat:
        positions, inputs, out = rows * rows, [dim_x + dim_y], 1
    else:
        positions, inputs, out = rows, [dim_x, dim_y], p.embed_dim
    if training:
        per_position = sum(2 * d + 2 * p.layers * p.hidden + out for d in inputs)
    else:
        per_position = sum(d + 3 * max(p.hidden, out) for d in inputs)
    scores = SCORE_COPIES * rows * rows * (p.components if isinstance(p, DensityParams) else 1)  # (B, K, B) per head
    return positions * per_position + scores


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
                            p.lr, checkpoints=checkpoints, interval_resamples=p.interval_resamples,
                            heldout=p.heldout)
    unsorted: list[Estimate | Exception] = [None] * len(members)  # type: ignore[list-item]
    for position, g in enumerate(order):
        unsorted[g] = results[position]
    valued_on = _valuing_batch(len(members[0][1]), budget, p)
    for (_, objective), result in zip(built, unsorted, strict=True):
        if not isinstance(result, Estimate):
            continue
        result.diagnostics["bound"] = objective.bound  # lower, upper or estimate: the report's brackets
        cap = objective.cap_nats(valued_on) if isinstance(objective, objectives.Capped) else None
        if cap is not None:
            # The report draws this line for this estimator only: the core names no bound.
            result.diagnostics["cap_nats"] = cap
        result.flags |= _bound_flags(objective, result, cap, budget.batch_size)
    return unsorted


CAP_MARGIN = 0.1  # nats: an estimate this close to its cap says "at least"


def _bound_flags(objective: nn.Module, result: Estimate, cap: float | None, batch: int) -> dict[str, str]:
    """The flags a bound's own statistics raise: at its cap, or (for the e^I-variance bounds) pure noise."""
    flags = {}
    if cap is not None and result.value >= cap - CAP_MARGIN:
        flags["at_cap"] = (f"{result.value:.3f} nats is within {CAP_MARGIN} of the bound's cap log B = {cap:.3f}: the "
                           "true value may be higher (read it as 'at least'); value on larger batches (value_batch)")
    variance = result.diagnostics.get("last_quarter_var")
    if isinstance(objective, objectives.HIGH_VARIANCE) and variance is not None:
        allowed = math.exp(min(max(result.value, 0.0), 50.0)) / batch
        if variance > allowed:
            flags["noisy"] = (f"the batch values over the last quarter of training vary by {variance:.3g} (variance), "
                              f"more than e^I / B = {allowed:.3g} allows: the estimate is mostly noise; a bound with "
                              "lower variance (smile, infonce) or a larger batch helps")
    return flags


def _valuing_batch(n: int, budget: Budget, params: TrainingParams) -> int:
    """How many pairs each batch value behind the estimate saw: the training batch when streaming or
    valuing the last critic; the value batch (or the whole held-out split) when a checkpoint is chosen."""
    rows = n - heldout_start(n, budget, params.heldout)
    if not params.checkpoint_every or not rows:
        return budget.batch_size
    return min(params.value_batch or n, rows)


# One builder per registered name. Each objective factory is a lambda of its own builder, so
# the estimators of one name share its code object: _sharing_key relies on that to let members
# with equal parameter-free objectives share one instance in a group.


def build_infonce(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.InfoNCE())


def build_nwj(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.NWJ())


def build_mine(params: MINEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.MINE(p.ma_rate))


def build_js(params: CriticParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.JS())


def build_smile(params: SMILEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.SMILE(p.tau))


def build_tuba(params: BaselineParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.TUBA(dy, p.baseline_hidden))


def build_interpolated(params: InterpolatedParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.Interpolated(dy, p.alpha, p.baseline_hidden))


def build_nce(params: NCEParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.NCE(p.negatives))


def build_fgan(params: FGANParams) -> VariationalEstimator:
    table_row = divergence(params.divergence, params.alpha)
    return VariationalEstimator(params, lambda _p, _dx, _dy: objectives.FGAN(table_row),
                                target=target_name(params.divergence, params.alpha), two_sample=True)


def build_flo(params: FLOParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.FLO(dx, dy, p.u_hidden))


def _conditional(params: DensityParams) -> CriticFactory:
    return functools.partial(densities.ConditionalCritic, components=params.components)


def _likelihoods(params: DensityParams, factors: tuple[str, ...]) -> CriticFactory:
    return functools.partial(densities.LikelihoodCritic, components=params.components, factors=factors)


def build_club(params: DensityParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.CLUB(), critic=_conditional(params))


def build_club_sample(params: DensityParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.CLUBSample(), critic=_conditional(params))


def build_l1out(params: DensityParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.L1Out(), critic=_conditional(params))


def build_doe(params: DensityParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.DifferenceOfEntropies(),
                                critic=_likelihoods(params, ("y|x", "y")))


def build_gm(params: DensityParams) -> VariationalEstimator:
    return VariationalEstimator(params, lambda p, dx, dy: objectives.GenerativeMI(),
                                critic=_likelihoods(params, ("xy", "x", "y")))


class BarberAgakovEstimator(VariationalEstimator):
    """The Barber-Agakov bound: needs h(Y), from entropy_y or from a task that declares it (harness.api.UsesEntropy)."""

    @property
    def needs_entropy(self) -> bool:
        return self.params.entropy_y is None

    def with_entropy_y(self, nats: float) -> BarberAgakovEstimator:
        try:  # validated, so that an entropy never meets normal-score marginals
            return build_ba(BAParams.model_validate(self.params.model_dump() | {"entropy_y": float(nats)}))
        except ValueError as error:
            raise UserError(f"ba cannot take the task's entropy of y: {error.errors()[0]['msg']}") from None

    def group_key(self) -> Hashable | None:
        return None if self.needs_entropy else super().group_key()  # refused alone, not as a group's failure

    def fit_estimate_group(self, members: Sequence[Member], budget: Budget, device: str) -> list[Estimate | Exception]:
        if any(estimator.params.entropy_y is None for estimator, *_ in members):
            raise UserError("ba needs the differential entropy of a continuous y: give entropy_y (nats, of y as "
                            "given, with marginals = 'raw'), or run it on a task that declares it (this task does not, "
                            "or its y is discrete); without one, use doe, which estimates h(Y) itself.")
        return super().fit_estimate_group(members, budget, device)


def build_ba(params: BAParams) -> BarberAgakovEstimator:
    return BarberAgakovEstimator(params, lambda p, dx, dy: objectives.BarberAgakov(p.entropy_y),
                                 critic=_conditional(params))
