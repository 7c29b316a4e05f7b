"""The one critic-training loop shared by every variational estimator.

A critic maps a batch (x, y) to the score matrix S[i, j] = T(x_i, y_j) (positives on the
diagonal); an objective maps S to (loss to minimise, value to report). One forward pass
serves every bound.

Which value is reported depends on the data: with at least steps x batch_size samples
every step sees a fresh batch and the estimate is the mean training-batch value over the
last quarter of steps (each value is computed before the step that uses it, so it is an
out-of-sample value, as in Poole et al. 2019). With fewer samples the data is split in
half: the critic trains on one half and the estimate is the bound on the other half.

Checkpoint selection (`Checkpoints`, held-out protocol only) carves a validation split from the
end of the training half. Every `every` steps the frozen critic is valued on the validation rows
and on the held-out half; the estimate is the held-out value of the checkpoint whose validation
value was best. That equals restoring the best weights and valuing them once, and the held-out
half never takes part in the choice.

Many critics of one architecture train as one model (`train_critics`): the model's weights
carry a leading group dimension G and its forward maps (G, B, dx), (G, B, dy) to (G, B, B).
Each member keeps its own data, batch-index generator, bound, reported value and failure;
one Adam over the stacked weights is G independent Adams (Adam is elementwise), and the
summed loss keeps gradients apart. `train_critic` is the case G = 1 of the same loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from collections.abc import Sequence
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
    """

    def __call__(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]: ...


class Critic(Protocol):
    """An nn.Module: forward(x, y) -> score matrix of shape (B, B)."""

    def __call__(self, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Checkpoints:
    """Value the critic every `every` steps; `validation` is the share of the training half held back
    to choose the checkpoint; `batch` rows per valuing batch (0: each split as one batch)."""

    every: int
    validation: float = 0.2
    batch: int = 0

    def __post_init__(self) -> None:
        if self.every < 1 or not 0 < self.validation < 1 or self.batch < 0:
            raise ValueError(f"checkpoints need every >= 1, 0 < validation < 1 and batch >= 0, got {self}")


def heldout_start(n: int, budget: Budget) -> int:
    """The first held-out row when n samples train under `budget`; n under the streaming protocol."""
    return n if n >= budget.steps * budget.batch_size else n // 2


class _OneCritic(nn.Module):
    """A plain critic as a group of one: (1, B, d) -> (1, B, B), keeping its fast unbatched layers."""

    def __init__(self, critic: nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.critic(x[0], y[0]).unsqueeze(0)


def train_critic(
    critic: nn.Module,
    objective: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    budget: Budget,
    device: str,
    seed: int,
    lr: float,
    ema_span: int = 200,
    record_every: int = 10,
    checkpoints: Checkpoints | None = None,
) -> Estimate:
    """Train one critic; raises FloatingPointError when the bound becomes non-finite."""
    (result,) = train_critics(_OneCritic(critic), [objective], [x], [y], budget, device, [seed], lr,
                              ema_span, record_every, checkpoints)
    if isinstance(result, BaseException):
        raise result
    return result


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
) -> list[Estimate | FloatingPointError]:
    """Train G critics as one grouped model; member g sees (xs[g], ys[g]) and batch indices from seeds[g].

    objectives[g] trains member g; one instance listed for consecutive members is called once on
    their stacked scores (so it must have no parameters of its own). A member whose bound turns
    non-finite gets a FloatingPointError in its slot, as training it alone would have raised;
    the others go on.
    """
    torch_device = resolve_device(device)
    if torch_device.type == "cpu":
        retain_freed_memory()
    g_count, b = len(xs), budget.batch_size
    if not (len(ys) == len(seeds) == len(objectives) == g_count >= 1):
        raise ValueError(f"give one x, y, seed and objective per member: {len(xs)}, {len(ys)}, {len(seeds)}, "
                         f"{len(objectives)}")
    n = len(xs[0])
    for x, y in zip(xs, ys, strict=True):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}; pairs must line up.")
        if len(x) != n:
            raise ValueError(f"every member of a group needs the same number of samples ({n}), got {len(x)}.")
    if n < 2 * b and n < budget.steps * b:
        raise ValueError(f"{n} samples are too few for batch size {b}; give at least {2 * b}.")
    runs = _objective_runs(objectives)
    data_x = _stack(xs, torch_device)
    data_y = _stack(ys, torch_device)
    train_rows = heldout_start(n, budget)
    streaming = train_rows == n
    if checkpoints and streaming:
        raise ValueError("checkpoint selection needs the held-out protocol (fewer samples than steps x batch)")
    fit_rows = train_rows - round(checkpoints.validation * train_rows) if checkpoints else train_rows
    if checkpoints and min(fit_rows, train_rows - fit_rows) < 1:
        raise ValueError(f"{train_rows} training rows cannot give a validation split of {checkpoints.validation}")
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    # Member g's row r is row g * n + r of the flattened data: one index_select per step.
    offsets = (torch.arange(g_count) * n).view(1, g_count, 1)
    flat_x, flat_y = data_x.view(g_count * n, -1), data_y.view(g_count * n, -1)

    critic.to(torch_device)
    parameters = list(critic.parameters())
    for objective, _, _ in runs:
        objective.to(torch_device)
        parameters += list(objective.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr, **_fastest_adam(parameters))
    timer = StepTimer(torch_device)
    alpha = 2.0 / (ema_span + 1)
    smoothed = np.full(g_count, math.nan)
    trajectories: list[list[tuple[int, float]]] = [[] for _ in range(g_count)]
    failures: dict[int, FloatingPointError] = {}
    values = torch.empty(budget.steps, g_count, device=torch_device)
    indices = None
    chosen = _Choice(g_count) if checkpoints else None

    for step in range(budget.steps):
        if streaming:
            xb, yb = data_x[:, step * b : (step + 1) * b], data_y[:, step * b : (step + 1) * b]
        else:
            if step % INDEX_CHUNK == 0:
                chunk = min(INDEX_CHUNK, budget.steps - step)
                # Drawing (chunk, b) at once consumes each generator exactly as `chunk` draws of (b,).
                indices = torch.stack([torch.randint(fit_rows, (chunk, b), generator=gen) for gen in generators],
                                      dim=1)
                indices = (indices + offsets).view(chunk, g_count * b).to(torch_device)
            rows = indices[step % INDEX_CHUNK]
            xb = flat_x.index_select(0, rows).view(g_count, b, -1)
            yb = flat_y.index_select(0, rows).view(g_count, b, -1)
        timer.start()
        loss, value = _losses(runs, critic(xb, yb), xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.stop()
        values[step] = value
        if (step + 1) % record_every == 0 or step + 1 == budget.steps:
            # One host sync per `record_every` steps keeps the GPU queue full.
            window = values[step + 1 - min(record_every, step + 1) : step + 1].cpu().numpy().astype(np.float64)
            for member in np.flatnonzero(~np.all(np.isfinite(window), axis=0)):
                failures.setdefault(int(member), FloatingPointError(
                    f"the bound became non-finite by step {step + 1}"))
            if len(failures) == g_count:  # nothing left worth training
                return [failures[g] for g in range(g_count)]
            for row in window:
                smoothed = np.where(np.isnan(smoothed), row, (1 - alpha) * smoothed + alpha * row)
            for member, trajectory in enumerate(trajectories):
                if member not in failures:
                    trajectory.append((step + 1, float(smoothed[member])))
        if chosen and ((step + 1) % checkpoints.every == 0 or step + 1 == budget.steps):
            chosen.offer(step + 1, *(heldout_values(critic, runs, data_x[:, rows], data_y[:, rows],
                                                    min(checkpoints.batch or n, rows.stop - rows.start))
                                     for rows in (slice(fit_rows, train_rows), slice(train_rows, n))))

    if streaming:
        final = _member_means(values[-max(1, budget.steps // 4) :])
    elif chosen:
        final = chosen.heldout
    else:
        final = heldout_values(critic, runs, data_x[:, train_rows:], data_y[:, train_rows:], b)
    timing = timer.summary()
    diagnostics = {"protocol": "stream" if streaming else "heldout", "steps": budget.steps, **timing}
    if g_count > 1:
        # The group's kernel time is shared out evenly; the total stays visible beside it.
        diagnostics |= {"kernel_ms": timing["kernel_ms"] / g_count, "group_size": g_count,
                        "group_kernel_ms": timing["kernel_ms"]}
    return [failures.get(g) or Estimate(value=final[g], trajectory=trajectories[g],
                                        diagnostics=diagnostics | (chosen.diagnostics(g) if chosen else {}))
            for g in range(g_count)]


class _Choice:
    """Per member, the held-out value at the checkpoint with the best validation value so far,
    and every checkpoint as (step, validation value, held-out value)."""

    def __init__(self, g_count: int):
        self.validation = [-math.inf] * g_count
        self.heldout = [math.nan] * g_count
        self.step = [0] * g_count
        self.history: list[list[tuple[int, float, float]]] = [[] for _ in range(g_count)]

    def offer(self, step: int, validation: list[float], heldout: list[float]) -> None:
        for g, (valid, held) in enumerate(zip(validation, heldout, strict=True)):
            self.history[g].append((step, valid, held))
            if self.step[g] == 0 or valid > self.validation[g]:
                self.validation[g], self.heldout[g], self.step[g] = valid, held, step

    def diagnostics(self, g: int) -> dict[str, object]:
        return {"chosen_step": self.step[g], "checkpoints": self.history[g]}


@torch.no_grad()
def heldout_values(critic: nn.Module, runs: list[tuple[nn.Module, int, int]], xs: Tensor, ys: Tensor,
                   batch_size: int) -> list[float]:
    """Per member, the mean bound over full held-out batches of (G, N, d) data, critic frozen.

    Eval mode while valuing (stateful objectives such as MINE's moving average must not update),
    then each module's mode is restored, so training can go on after a checkpoint.
    """
    modules = [critic, *(objective for objective, _, _ in runs)]
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    usable = xs.shape[1] // batch_size * batch_size
    values = [_losses(runs, critic(xb, yb), xb, yb)[1]
              for xb, yb in zip(xs[:, :usable].split(batch_size, 1), ys[:, :usable].split(batch_size, 1),
                                strict=True)]
    for module, mode in zip(modules, modes, strict=True):
        module.train(mode)
    return _member_means(torch.stack(values))


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


def _fastest_adam(parameters: list[Tensor]) -> dict[str, bool]:
    """The fused kernel (one call for all tensors) where this torch has it for these tensors.

    It is elementwise like the reference implementation, so a member's update does not
    depend on what else shares the call (tests/test_grouping.py checks this).
    """
    supported = all(p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
                    for p in parameters)
    return {"fused": True} if supported and parameters else {}
