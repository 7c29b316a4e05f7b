"""The one critic-training loop shared by every variational estimator.

A critic maps a batch (x, y) to the score matrix S[i, j] = T(x_i, y_j) (positives on the
diagonal); an objective maps S to (loss to minimise, value to report). One forward pass
serves every bound.

Which value is reported depends on the data: with at least steps x batch_size samples
every step sees a fresh batch and the estimate is the mean training-batch value over the
last quarter of steps (each value is computed before the step that uses it, so it is an
out-of-sample value, as in Poole et al. 2019). With fewer samples the data is split: the
critic trains on the first rows and the estimate is the bound on the rest, a `heldout` share
(half unless the caller says otherwise; the estimators pass their `heldout` parameter).

Checkpoint selection (`Checkpoints`, held-out protocol only: streaming ignores it) carves a validation split from the
end of the training rows. Every `every` steps the frozen critic is valued on the validation rows
and on the held-out rows; the estimate is the held-out value of the checkpoint whose validation
value was best. That equals restoring the best weights and valuing them once, and the held-out
rows never take part in the choice.

Many critics of one architecture train as one model (`train_critics`): the model's weights
carry a leading group dimension G and its forward maps (G, B, dx), (G, B, dy) to (G, B, B).
Each member keeps its own data, batch-index generator, bound, reported value and failure;
one Adam over the stacked weights is G independent Adams (Adam is elementwise), and the
summed loss keeps gradients apart. A critic alone is a group of one through the same batched
layers, so its numbers do not depend on whether it was grouped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from harness.api import Budget, Estimate
from harness.timing import StepTimer, resolve_device

INDEX_CHUNK = 256  # batch indices are drawn this many steps at a time (same stream as step by step)


class Objective(Protocol):
    """An nn.Module: forward(scores, x, y) -> (loss, value). value is detached, in nats.

    scores may carry leading group dimensions, (..., B, B) with x (..., B, dx): the loss is
    summed over them and the value keeps them, so one objective can serve several members.
    Optional: criterion(scores, x, y) -> (...), what checkpoints are chosen by on the validation rows
    (default: the value), and learned_pmi(scores, x, y) -> (..., B), the pointwise MI the critic
    learned for each positive pair (Estimate.pmi, on held-out rows).
    """

    def __call__(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]: ...


class Critic(Protocol):
    """An nn.Module over a group of G members: forward(x, y) maps (G, B, dx), (G, B, dy) to the score
    matrices (G, B, B), S[g, i, j] = T_g(x[g, i], y[g, j]) with positives on the diagonal; G = 1 alone.
    (A density model's critic may give instead what its objective reads, (G, B, ...), e.g. each pair's
    log-likelihoods: the loop only hands the critic's output to the objective.)

    Every tensor of its state holds member g at rows g, G + g, 2G + g, ... of its first dimension, so
    that the loop can give each member the weights of its own chosen checkpoint (_Snapshots)."""

    def __call__(self, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Checkpoints:
    """Value the critic every `every` steps; `validation` is the share of the training rows held back
    to choose the checkpoint; `batch` rows per valuing batch (0: each split as one batch)."""

    every: int
    validation: float = 0.2
    batch: int = 0

    def __post_init__(self) -> None:
        if self.every < 1 or not 0 < self.validation < 1 or self.batch < 0:
            raise ValueError(f"checkpoints need every >= 1, 0 < validation < 1 and batch >= 0, got {self}")


HALF = 0.5


def heldout_start(n: int, budget: Budget, heldout: float = HALF) -> int:
    """The first held-out row when n samples train under `budget` and a `heldout` share of them value the
    critic (rounded half up, so n // 2 for a half, and at least one row); n under the streaming protocol."""
    return n if n >= budget.steps * budget.batch_size else n - max(1, math.floor(n * heldout + 0.5))


def train_critics(
    critic: nn.Module,
    objectives: Sequence[nn.Module],
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    budget: Budget,
    device: str,
    seeds: Sequence[int],
    lr: float,
    ema_span: int = 200,
    record_every: int = 10,
    checkpoints: Checkpoints | None = None,
    interval_resamples: int = 20,
    heldout: float = HALF,
) -> list[Estimate | FloatingPointError]:
    """Train G critics as one grouped model; member g sees (xs[g], ys[g]) and batch indices from seeds[g].

    critic is the grouped model (a critic alone is a group of one). objectives[g] trains member g;
    one instance listed for consecutive members is called once on their stacked scores (so it must
    have no parameters of its own). A member whose bound turns non-finite gets a FloatingPointError
    in its slot, as training it alone would have; the others go on.

    Each estimate carries a 95% interval (`Intervals`; `interval_resamples` = 0: none), its
    criterion (the chosen checkpoint's validation value) and the loop's sanity flags (`loop_flags`).
    `heldout` is the share of the samples that value the critic when they are too few to stream.
    """
    torch_device = _training_device(device)
    _check_members(objectives, xs, ys, seeds, budget, checkpoints, heldout)
    runs = _objective_runs(objectives)
    if heldout_start(len(xs[0]), budget, heldout) == len(xs[0]):
        checkpoints = None  # streaming: each value is out of sample already; nothing is held back to choose on
    split = _split(xs, ys, budget, checkpoints, heldout, torch_device)
    modules = [critic, *(objective for objective, _, _ in runs)]
    for module in modules:
        module.to(torch_device)
    optimizer = adam((p for module in modules for p in module.parameters()), lr)
    timer = StepTimer(torch_device)
    g_count = len(xs)
    record = _Record(g_count, budget.steps, ema_span, record_every, torch_device)
    chosen = _Choice(g_count, checkpoints, budget.steps) if checkpoints else None
    snapshots = _Snapshots(modules)

    for step, (xb, yb) in enumerate(_batches(split, budget, seeds)):
        timer.start()
        value = _step(critic, runs, optimizer, xb, yb)
        timer.stop()
        record.add(step, value)
        if len(record.failures) == g_count:  # nothing left worth training
            return [record.failures[g] for g in range(g_count)]
        if chosen and chosen.due(step + 1):
            if chosen.offer(step + 1, *_checkpoint_values(critic, runs, split, checkpoints.batch)):
                snapshots.take(step + 1, keep=set(chosen.step))

    final = _final_values(critic, runs, split, record, chosen, budget)
    intervals = Intervals(interval_resamples, seeds)
    if split.streaming:
        bounds = intervals.streaming(final, record.values[-_last_quarter(budget.steps):])
    else:
        value_batch = min(checkpoints.batch or split.n, split.n - split.train) if checkpoints else budget.batch_size
        snapshots.restore_members(chosen.step if chosen else [budget.steps] * g_count, runs)  # each member's own
        bounds = intervals.heldout(final, critic, runs, split, value_batch)
        learned = _learned_pmi(critic, runs, split, value_batch)
    estimates = _estimates(final, record, chosen, timer.summary(), split.streaming, budget.steps)
    last = record.values[-_last_quarter(budget.steps):].double()
    for g, estimate in enumerate(estimates):
        if isinstance(estimate, Estimate):
            # the training batches' spread, which the bounds' noise flags compare with e^I / B
            estimate.diagnostics = estimate.diagnostics | {
                "last_quarter_var": float(last[:, g].var()) if len(last) > 1 else None}
            estimate.interval = bounds[g]
            estimate.criterion = chosen.validation[g] if chosen else None
            # the training values beside the estimate: the steps leading to the chosen checkpoint, else the last quarter
            trained = (record.values[max(0, chosen.step[g] - chosen.every):chosen.step[g], g] if chosen
                       else last[:, g])
            estimate.flags = loop_flags(estimate.value, float(trained.double().mean()), split, budget)
            estimate.pmi = None if split.streaming else learned[g]
    return estimates


def _last_quarter(steps: int) -> int:
    return max(1, steps // 4)


def loop_flags(value: float, trained: float, split: _Split, budget: Budget) -> dict[str, str]:
    """The sanity flags any critic's training can raise, whatever its bound (docs/estimates.md); `trained`
    is the mean training-batch value of the steps the estimate stands for."""
    flags = {}
    b, fit = budget.batch_size, split.fit
    if b > fit:
        flags["batch_exceeds_split"] = (f"the batch ({b} rows) is larger than the training split ({fit} rows): every "
                                        "batch repeats rows; give more samples or a smaller batch_size")
    elif fit < 4 * b:
        flags["few_samples"] = (f"the training split holds {fit} rows, under 4 batches of {b}: successive batches "
                                "mostly repeat rows; the budget needs more samples")
    if not split.streaming:
        gap = trained - value
        if gap > max(0.1, 0.1 * abs(value)):
            flags["overfit"] = (f"the training batches' value ({trained:.3f}, before the chosen checkpoint or over "
                                f"the last quarter) exceeds the "
                                f"held-out estimate ({value:.3f}) by {gap:.3f} nats: the critic fits its training rows "
                                "rather than the distribution (fewer steps, or checkpoint_every, help)")
    return flags


class _Snapshots:
    """Copies of the modules' states at the checkpoints some member still counts as its best."""

    def __init__(self, modules: Sequence[nn.Module]):
        self.modules = modules
        self.states: dict[int, list[dict[str, Tensor]]] = {}

    def take(self, step: int, keep: set[int]) -> None:
        self.states = {s: state for s, state in self.states.items() if s in keep}
        self.states[step] = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.modules]

    def restore_members(self, steps: Sequence[int], runs: list[tuple[nn.Module, int, int]]) -> None:
        """Load into the modules, member by member, the checkpoint each member chose (steps[g]; a step with
        no snapshot is the last, as the modules stand): member g's rows of the critic's state (see Critic),
        and the state of an objective that serves that member alone."""
        g_count = len(steps)
        critic, *objectives = self.modules
        state = {name: tensor.clone() for name, tensor in critic.state_dict().items()}
        for name, tensor in state.items():
            if tensor.dim() == 0 or tensor.shape[0] % g_count:
                raise ValueError(f"the grouped critic's {name} does not stack its {g_count} members on its first "
                                 f"dimension ({tuple(tensor.shape)})")
            for g, step in enumerate(steps):
                if step in self.states:
                    rows = torch.arange(g, tensor.shape[0], g_count)
                    tensor[rows] = self.states[step][0][name][rows]
        critic.load_state_dict(state)
        for position, (objective, start, stop) in enumerate(runs, start=1):
            if stop - start == 1 and steps[start] in self.states and objective.state_dict():
                objective.load_state_dict(self.states[steps[start]][position])


class Intervals:
    """95% intervals for the members' estimates.

    Streaming: the estimate is a mean of independent fresh-batch values, so mean +- 1.96 sd / sqrt(m).
    Held out: the frozen (chosen) critic is valued on `resamples` random subsets of m held-out rows,
    drawn without replacement (a bootstrap with replacement would put a pair's twin among its
    negatives). For a statistic that behaves like a mean, subsets of m of the H held-out rows vary
    by Var* = s^2 / m (1 - m / H), so the estimate over K disjoint batches of b rows has variance
    Var* m / ((1 - m / H) K b). m = b when the held-out rows hold two batches or more, else H / 2.
    The interval covers the held-out sampling, not the critic's training; the report adds the seed spread.
    """

    def __init__(self, resamples: int, seeds: Sequence[int]):
        self.resamples, self.seeds = resamples, seeds

    def streaming(self, final: list[float], values: Tensor) -> list[tuple[float, float] | None]:
        if not self.resamples or len(values) < 2:
            return [None] * len(final)
        spread = values.double().std(dim=0) / math.sqrt(len(values))
        return [_normal(value, float(se)) for value, se in zip(final, spread, strict=True)]

    @torch.no_grad()
    def heldout(self, final: list[float], critic: nn.Module, runs: list[tuple[nn.Module, int, int]], split: _Split,
                batch: int) -> list[tuple[float, float] | None]:
        """The critic holds each member's chosen checkpoint (_Snapshots.restore_members): one pass serves all."""
        rows = split.n - split.train
        batches = rows // batch
        subset = batch if batches >= 2 else rows // 2
        if not self.resamples or subset < 2:
            return [None] * len(final)
        scale = subset / ((1 - subset / rows) * batches * batch)
        values = self._subset_values(critic, runs, split, subset)
        return [_normal(final[g], math.sqrt(float(values[:, g].double().var()) * scale)) for g in range(len(final))]

    def _subset_values(self, critic: nn.Module, runs: list[tuple[nn.Module, int, int]], split: _Split,
                       subset: int) -> Tensor:
        """(resamples, G): each member's bound on its own random subsets of its held-out rows."""
        x, y = split.x[:, split.heldout], split.y[:, split.heldout]
        g_count, rows = x.shape[0], x.shape[1]
        generators = [torch.Generator().manual_seed(seed + 1) for seed in self.seeds]  # apart from the batch stream
        offsets = (torch.arange(g_count) * rows).view(g_count, 1)
        flat_x, flat_y = x.reshape(g_count * rows, -1), y.reshape(g_count * rows, -1)
        values = []
        for _ in range(self.resamples):
            chosen = torch.stack([torch.randperm(rows, generator=gen)[:subset] for gen in generators]) + offsets
            chosen = chosen.view(-1).to(x.device)
            xb = flat_x.index_select(0, chosen).view(g_count, subset, -1)
            yb = flat_y.index_select(0, chosen).view(g_count, subset, -1)
            values.append(_frozen_values(critic, runs, xb, yb))
        return torch.stack(values)


def _normal(value: float, se: float) -> tuple[float, float] | None:
    return (value - 1.96 * se, value + 1.96 * se) if math.isfinite(se) else None


def _training_device(device: str) -> torch.device:
    """The torch device to train on; on CPU, the allocator first learns to keep freed blocks."""
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        retain_freed_memory()
    return torch_device


def _check_members(objectives: Sequence[nn.Module], xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                   seeds: Sequence[int], budget: Budget, checkpoints: Checkpoints | None, heldout: float) -> None:
    """One x, y, seed and objective per member, pairs that line up, and enough samples for a batch."""
    if not 0 < heldout < 1:
        raise ValueError(f"the held-out share must lie strictly between 0 and 1, got {heldout}")
    g_count = len(xs)
    if not (len(ys) == len(seeds) == len(objectives) == g_count >= 1):
        raise ValueError(f"give one x, y, seed and objective per member: {len(xs)}, {len(ys)}, {len(seeds)}, "
                         f"{len(objectives)}")
    n = len(xs[0])
    for x, y in zip(xs, ys, strict=True):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}; pairs must line up.")
        if len(x) != n:
            raise ValueError(f"every member of a group needs the same number of samples ({n}), got {len(x)}.")
    problem = sample_problem(n, budget, checkpoints, heldout)
    if problem:
        raise ValueError(problem)


def sample_problem(n: int, budget: Budget, checkpoints: Checkpoints | None = None,
                   heldout: float = HALF) -> str | None:
    """Why n samples cannot train under `budget` (with `checkpoints` and a `heldout` share), or None.

    One rule for the loop and for a suite's load (through the estimator's budget_problem), so a
    suite never starts a cell that would fail here.
    """
    b = budget.batch_size
    if _enough_rows(n, budget, checkpoints, heldout):
        return None
    train = heldout_start(n, budget, heldout)
    if train >= b and checkpoints and min(train, n - train) >= 2:
        return f"{train} training rows cannot give a validation split of {checkpoints.validation}"
    needed = max(math.ceil(b / (1 - heldout)), math.ceil((2 if checkpoints else b) / heldout))
    while not _enough_rows(needed, budget, checkpoints, heldout):
        needed += 1
    valued = "the held-out rows at least 2" if checkpoints else "the held-out rows another"
    return (f"{n} samples are too few for batch size {b}: the training rows ({train}) must hold a batch and "
            f"{valued} ({n - train} held out: a share of {heldout}); give at least {needed}.")


def _enough_rows(n: int, budget: Budget, checkpoints: Checkpoints | None, heldout: float) -> bool:
    """Whether n samples can train (a batch of training rows) and be valued: in training batches without
    checkpoints, in value batches cut to the rows with them (and every split then holds a row)."""
    train = heldout_start(n, budget, heldout)
    if train == n:  # streaming: every batch is fresh, no checkpoint is chosen
        return True
    if train < budget.batch_size or n - train < (2 if checkpoints else budget.batch_size):
        return False
    if not checkpoints:
        return True
    fit = train - round(checkpoints.validation * train)
    return min(fit, train - fit) >= 1


@dataclass(frozen=True)
class _Split:
    """The members' data, (G, n, d) on the device, and its rows: [0, fit) train the critic, [fit, train)
    value checkpoints for the choice, [train, n) are held out; train = n under the streaming protocol."""

    x: Tensor
    y: Tensor
    fit: int
    train: int

    @property
    def n(self) -> int:
        return self.x.shape[1]

    @property
    def streaming(self) -> bool:
        return self.train == self.n

    @property
    def validation(self) -> slice:
        return slice(self.fit, self.train)

    @property
    def heldout(self) -> slice:
        return slice(self.train, self.n)


def _split(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], budget: Budget, checkpoints: Checkpoints | None,
           heldout: float, device: torch.device) -> _Split:
    """The stacked data and its rows: a `heldout` share held out unless every step can see a fresh batch."""
    n = len(xs[0])
    train = heldout_start(n, budget, heldout)
    fit = train - round(checkpoints.validation * train) if checkpoints else train  # checked by sample_problem
    return _Split(_stack(xs, device), _stack(ys, device), fit, train)


def adam(parameters: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam, fused (one kernel call for all tensors) where this torch has the fused kernel for them: on this
    CPU a step over a million parameters takes 0.65 ms fused against 3.7 ms in torch's default loop.

    The fused kernel is elementwise like the reference implementation, so a member's update does
    not depend on what else shares the call (tests/test_grouping.py checks this).
    """
    parameters = list(parameters)
    supported = all(p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
                    for p in parameters)
    fused = {"fused": True} if supported and parameters else {}
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, **fused)


def _batches(split: _Split, budget: Budget, seeds: Sequence[int]) -> Iterator[tuple[Tensor, Tensor]]:
    """Each step's batch (xb, yb), (G, B, d): step s streams rows [s B, (s + 1) B), or, under the
    held-out protocol, member g draws B of its fitting rows from a generator seeded with seeds[g]."""
    b = budget.batch_size
    if split.streaming:
        for step in range(budget.steps):
            rows = slice(step * b, (step + 1) * b)
            yield split.x[:, rows], split.y[:, rows]
        return
    g_count, n = len(seeds), split.n
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    # Member g's row r is row g * n + r of the flattened data: one index_select per step.
    offsets = (torch.arange(g_count) * n).view(1, g_count, 1)
    flat_x, flat_y = split.x.view(g_count * n, -1), split.y.view(g_count * n, -1)
    for start in range(0, budget.steps, INDEX_CHUNK):
        chunk = min(INDEX_CHUNK, budget.steps - start)
        # Drawing (chunk, b) at once consumes each generator exactly as `chunk` draws of (b,).
        indices = torch.stack([torch.randint(split.fit, (chunk, b), generator=gen) for gen in generators], dim=1)
        for rows in (indices + offsets).view(chunk, g_count * b).to(split.x.device):
            yield flat_x.index_select(0, rows).view(g_count, b, -1), flat_y.index_select(0, rows).view(g_count, b, -1)


def _step(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], optimizer: torch.optim.Optimizer,
          xb: Tensor, yb: Tensor) -> Tensor:
    """One Adam step on the summed loss; returns each member's value, computed before the update."""
    loss, value = _losses(runs, critic(xb, yb), xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


class _Record:
    """Per member: every step's training value, the trajectory (an EMA of span `ema_span`, recorded
    every `every` steps and at the last) and the first failure (a non-finite value)."""

    def __init__(self, g_count: int, steps: int, ema_span: int, every: int, device: torch.device):
        self.values = torch.empty(steps, g_count, device=device)
        self.steps, self.every = steps, every
        self.alpha = 2.0 / (ema_span + 1)
        self.smoothed = np.full(g_count, math.nan)
        self.trajectories: list[list[tuple[int, float]]] = [[] for _ in range(g_count)]
        self.failures: dict[int, FloatingPointError] = {}

    def add(self, step: int, value: Tensor) -> None:
        self.values[step] = value
        done = step + 1
        if done % self.every and done != self.steps:
            return
        # One host sync per `every` steps keeps the GPU queue full.
        window = self.values[done - min(self.every, done) : done].cpu().numpy().astype(np.float64)
        for member in np.flatnonzero(~np.all(np.isfinite(window), axis=0)):
            self.failures.setdefault(int(member), FloatingPointError(f"the bound became non-finite by step {done}"))
        if len(self.failures) == len(self.trajectories):
            return
        for row in window:
            self.smoothed = np.where(np.isnan(self.smoothed), row, (1 - self.alpha) * self.smoothed + self.alpha * row)
        for member, trajectory in enumerate(self.trajectories):
            if member not in self.failures:
                trajectory.append((done, float(self.smoothed[member])))


class _Choice:
    """Per member, the held-out value at the checkpoint with the best validation value so far,
    and every checkpoint as (step, validation value, held-out value)."""

    def __init__(self, g_count: int, checkpoints: Checkpoints, steps: int):
        self.every, self.steps = checkpoints.every, steps
        self.validation = [-math.inf] * g_count
        self.heldout = [math.nan] * g_count
        self.step = [0] * g_count
        self.history: list[list[tuple[int, float, float]]] = [[] for _ in range(g_count)]

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.steps

    def offer(self, step: int, validation: list[float], heldout: list[float]) -> bool:
        """Record a checkpoint; True if it is now some member's best."""
        improved = False
        for g, (valid, held) in enumerate(zip(validation, heldout, strict=True)):
            self.history[g].append((step, valid, held))
            if self.step[g] == 0 or valid > self.validation[g]:
                self.validation[g], self.heldout[g], self.step[g] = valid, held, step
                improved = True
        return improved

    def diagnostics(self, g: int) -> dict[str, object]:
        return {"chosen_step": self.step[g], "checkpoints": self.history[g]}


def _checkpoint_values(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], split: _Split,
                       batch: int) -> tuple[list[float], list[float]]:
    """Per member, the frozen critic's bound on the validation rows and on the held-out rows."""
    validation, heldout = (heldout_values(critic, runs, split.x[:, rows], split.y[:, rows],
                                          min(batch or split.n, rows.stop - rows.start), read)
                           for rows, read in ((split.validation, "criterion"), (split.heldout, "value")))
    return validation, heldout


def _final_values(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], split: _Split, record: _Record,
                  chosen: _Choice | None, budget: Budget) -> list[float]:
    """Per member, the estimate: the mean training value over the last quarter of steps when streaming,
    else the held-out value of the chosen checkpoint, or of the last critic."""
    if split.streaming:
        return _member_means(record.values[-_last_quarter(budget.steps):])
    if chosen:
        return chosen.heldout
    return heldout_values(critic, runs, split.x[:, split.heldout], split.y[:, split.heldout], budget.batch_size)


def _estimates(final: list[float], record: _Record, chosen: _Choice | None, timing: dict[str, float],
               streaming: bool, steps: int) -> list[Estimate | FloatingPointError]:
    g_count = len(final)
    diagnostics = {"protocol": "stream" if streaming else "heldout", "steps": steps, **timing}
    if g_count > 1:
        # The group's kernel time is shared out evenly; the total stays visible beside it.
        diagnostics |= {"kernel_ms": timing["kernel_ms"] / g_count, "group_size": g_count,
                        "group_kernel_ms": timing["kernel_ms"]}
    return [record.failures.get(g) or Estimate(value=final[g], trajectory=record.trajectories[g],
                                               diagnostics=diagnostics | (chosen.diagnostics(g) if chosen else {}))
            for g in range(g_count)]


@torch.no_grad()
def heldout_values(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], xs: Tensor, ys: Tensor,
                   batch_size: int, read: str = "value") -> list[float]:
    """Per member, the mean bound (read "value") or checkpoint criterion (read "criterion": the objective's
    `criterion`, where it has one, else its value) over full held-out batches of (G, N, d) data, critic frozen.

    Eval mode while valuing (stateful objectives such as MINE's moving average must not update),
    then each module's mode is restored, so training can go on after a checkpoint.
    """
    usable = xs.shape[1] // batch_size * batch_size
    values = [_frozen_values(critic, runs, xb, yb, read)
              for xb, yb in zip(xs[:, :usable].split(batch_size, 1), ys[:, :usable].split(batch_size, 1),
                                strict=True)]
    return _member_means(torch.stack(values))


def _frozen_values(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], xb: Tensor, yb: Tensor,
                   read: str = "value") -> Tensor:
    """Each member's bound (or criterion) on one batch, in eval mode; each module's mode is restored afterwards."""
    with _frozen(critic, runs):
        scores = critic(xb, yb)
        if read == "value":
            return _losses(runs, scores, xb, yb)[1]
        return torch.cat([_criterion(objective, scores[start:stop], xb[start:stop], yb[start:stop]).reshape(-1)
                          for objective, start, stop in runs])


def _criterion(objective: nn.Module, scores: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
    if hasattr(objective, "criterion"):
        return objective.criterion(scores, xb, yb)
    return objective(scores, xb, yb)[1]


@contextlib.contextmanager
def _frozen(critic: nn.Module, runs: list[tuple[nn.Module, int, int]]) -> Iterator[None]:
    """Eval mode for the critic and the objectives (stateful ones such as MINE's must not update), restored after."""
    modules = [critic, *(objective for objective, _, _ in runs)]
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)


@torch.no_grad()
def _learned_pmi(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], split: _Split,
                 batch: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per member, (rows, learned PMI) on its first `batch` held-out rows, from objectives that give one."""
    if not any(hasattr(objective, "learned_pmi") for objective, _, _ in runs):
        return [None] * split.x.shape[0]
    rows = slice(split.train, split.train + batch)
    xb, yb = split.x[:, rows], split.y[:, rows]
    indices = np.arange(rows.start, rows.stop)
    learned: list[tuple[np.ndarray, np.ndarray] | None] = []
    with _frozen(critic, runs):
        scores = critic(xb, yb)
        for objective, start, stop in runs:
            if not hasattr(objective, "learned_pmi"):
                learned += [None] * (stop - start)
                continue
            values = objective.learned_pmi(scores[start:stop], xb[start:stop], yb[start:stop]).double().cpu().numpy()
            learned += [(indices, member) for member in values.reshape(stop - start, -1)]
    return learned


def _member_means(values: Tensor) -> list[float]:
    """Column means of (rows, G), each summed as one contiguous row, so a member's mean does not
    depend on how many members stand beside it."""
    return values.mT.contiguous().mean(-1).tolist()


def _losses(runs: list[tuple[nn.Module, int, int]], scores: Tensor, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """Summed loss and per-member values; each objective sees only its members' slice."""
    if len(runs) == 1:
        loss, value = runs[0][0](scores, xb, yb)
        return loss, value.reshape(-1)
    losses, values = [], []
    for objective, start, stop in runs:
        loss, value = objective(scores[start:stop], xb[start:stop], yb[start:stop])
        losses.append(loss)
        values.append(value.reshape(-1))
    return torch.stack(losses).sum(), torch.cat(values)


def _objective_runs(objectives: Sequence[nn.Module]) -> list[tuple[nn.Module, int, int]]:
    """Collapse consecutive repeats of one instance into (objective, start, stop) slices."""
    runs: list[tuple[nn.Module, int, int]] = []
    for g, objective in enumerate(objectives):
        if runs and runs[-1][0] is objective:
            runs[-1] = (objective, runs[-1][1], g + 1)
            continue
        if any(objective is seen for seen, _, _ in runs):
            raise ValueError("an objective shared by several members must serve consecutive members")
        runs.append((objective, g, g + 1))
    for objective, start, stop in runs:
        if stop - start > 1 and next(objective.parameters(), None) is not None:
            raise ValueError(f"{type(objective).__name__} has parameters of its own, so members cannot share it; "
                             "give each member its own instance")
    return runs


@functools.cache
def retain_freed_memory() -> bool:
    """Let glibc keep freed blocks instead of handing them back to the OS after every step.

    A training step allocates and frees the same tensors (hundreds of KB to MB) each time;
    by default glibc returns them with munmap / heap trimming and the next step pays page
    faults to get them back (measured up to 25% of a grouped small-critic step on CPU). Process
    wide; affects nothing but how much freed memory the process holds (at most 512 MB).
    Returns False where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20) and libc.mallopt(m_trim_threshold, 512 * 2**20))
    except (OSError, AttributeError):
        return False


def _stack(arrays: Sequence[np.ndarray], device: torch.device) -> Tensor:
    stacked = torch.empty((len(arrays), *np.shape(arrays[0])), dtype=torch.float32)
    for g, array in enumerate(arrays):
        stacked[g] = torch.as_tensor(np.asarray(array, dtype=np.float32))
    return stacked.to(device)

