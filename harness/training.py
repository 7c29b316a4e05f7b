"""The one critic-training loop shared by every variational estimator.

A critic maps a batch (x, y) to the score matrix S[i, j] = T(x_i, y_j) (positives on the
diagonal); an objective maps S to (loss to minimise, value to report). One forward pass
serves every bound.

Which value is reported depends on the data: with at least steps x batch_size samples
every step sees a fresh batch and the estimate is the mean training-batch value over the
last quarter of steps (each value is computed before the step that uses it, so it is an
out-of-sample value, as in Poole et al. 2019). With fewer samples the data is split in
half: the critic trains on one half and the estimate is the bound on the other half.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from harness.api import Budget, Estimate
from harness.timing import StepTimer, resolve_device


class Objective(Protocol):
    """An nn.Module: forward(scores, x, y) -> (loss, value). value is detached, in nats."""

    def __call__(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]: ...


class Critic(Protocol):
    """An nn.Module: forward(x, y) -> score matrix of shape (B, B)."""

    def __call__(self, x: Tensor, y: Tensor) -> Tensor: ...


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
) -> Estimate:
    torch_device = resolve_device(device)
    b = budget.batch_size
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}; pairs must line up.")
    if len(x) < 2 * b and len(x) < budget.steps * b:
        raise ValueError(f"{len(x)} samples are too few for batch size {b}; give at least {2 * b}.")
    xs = torch.as_tensor(np.asarray(x, dtype=np.float32), device=torch_device)
    ys = torch.as_tensor(np.asarray(y, dtype=np.float32), device=torch_device)
    streaming = len(xs) >= budget.steps * b
    train_rows = len(xs) if streaming else len(xs) // 2
    generator = torch.Generator().manual_seed(seed)

    critic.to(torch_device)
    objective.to(torch_device)
    parameters = list(critic.parameters()) + list(objective.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    timer = StepTimer(torch_device)
    alpha = 2.0 / (ema_span + 1)
    smoothed = math.nan
    trajectory: list[tuple[int, float]] = []
    values = torch.empty(budget.steps, device=torch_device)

    for step in range(budget.steps):
        if streaming:
            rows = torch.arange(step * b, (step + 1) * b)
        else:
            rows = torch.randint(train_rows, (b,), generator=generator)
        rows = rows.to(torch_device)
        xb, yb = xs[rows], ys[rows]
        timer.start()
        loss, value = objective(critic(xb, yb), xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.stop()
        values[step] = value
        if (step + 1) % record_every == 0 or step + 1 == budget.steps:
            # One host sync per `record_every` steps keeps the GPU queue full.
            window = values[step + 1 - min(record_every, step + 1) : step + 1].cpu().numpy()
            if not np.all(np.isfinite(window)):
                raise FloatingPointError(f"the bound became non-finite by step {step + 1}")
            for v in window:
                smoothed = float(v) if math.isnan(smoothed) else (1 - alpha) * smoothed + alpha * float(v)
            trajectory.append((step + 1, smoothed))

    if streaming:
        value = float(values[-max(1, budget.steps // 4) :].mean())
    else:
        value = heldout_value(critic, objective, xs[train_rows:], ys[train_rows:], b)
    diagnostics = {"protocol": "stream" if streaming else "heldout", "steps": budget.steps, **timer.summary()}
    return Estimate(value=value, trajectory=trajectory, diagnostics=diagnostics)


@torch.no_grad()
def heldout_value(critic: nn.Module, objective: nn.Module, xs: Tensor, ys: Tensor, batch_size: int) -> float:
    """Mean of the bound over full held-out batches, with the critic frozen."""
    critic.eval()
    objective.eval()  # stateful objectives (MINE's moving average) must not update here
    usable = len(xs) // batch_size * batch_size
    values = [
        objective(critic(xb, yb), xb, yb)[1]
        for xb, yb in zip(xs[:usable].split(batch_size), ys[:usable].split(batch_size), strict=True)
    ]
    return float(torch.stack(values).mean())
