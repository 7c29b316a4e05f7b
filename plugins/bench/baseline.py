"""The plain loop the benchmark measures us against: one critic at a time, as reference code trains it.

Poole et al.'s staircase protocol as their notebooks write it: nn.Linear stacks (SeparableCritic's
towers, never grouped), default Adam, `.item()` every step. The same seed, initial weights and
batches as ours, so only the training machinery differs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from harness.api import Budget
from plugins.estimators import bounds
from plugins.estimators.critics import SeparableCritic


def reference_bound(rule: str, scores: Tensor, tau: float = 5.0) -> tuple[Tensor, Tensor]:
    """(objective to maximise, value) of one score matrix, as the reference notebooks train them.

    NWJ (TUBA on S - 1) and SMILE (JS training, clipped-DV value) come from bounds.py, whose plain
    autograd forms are the notebooks' own; InfoNCE is written out, because bounds.infonce_bound
    carries our fused backward, which reference code does not have.
    """
    if rule == "infonce":
        value = math.log(scores.shape[0]) + (scores.diag() - scores.logsumexp(1)).mean()
        return value, value
    if rule == "nwj":
        value = bounds.nwj_bound(scores)
        return value, value
    if rule == "smile":
        return bounds.js_objective(scores), bounds.smile_value(scores, tau)
    raise ValueError(f"the plain loop knows infonce, nwj and smile, not {rule!r}")


def plain_loop(rule: str, x: np.ndarray, y: np.ndarray, budget: Budget, params: dict[str, Any], seed: int,
               device: torch.device) -> float:
    """One critic, trained as reference code does; same protocol and same initial weights as ours."""
    torch.manual_seed(seed)
    critic = SeparableCritic(x.shape[1], y.shape[1], params["hidden"], params["layers"], params["embed_dim"],
                             params["activation"]).to(device)
    optimizer = torch.optim.Adam(critic.parameters(), lr=params["lr"])
    xs, ys = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    b, steps = budget.batch_size, budget.steps
    streaming = len(x) >= steps * b
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for step in range(steps):
        if streaming:
            xb, yb = xs[step * b: (step + 1) * b], ys[step * b: (step + 1) * b]
        else:
            rows = torch.randint(len(x) // 2, (b,), generator=generator).to(device)
            xb, yb = xs[rows], ys[rows]
        objective, value = reference_bound(rule, critic(xb, yb))
        optimizer.zero_grad()
        (-objective).backward()
        optimizer.step()
        estimates.append(value.item())
    if streaming:
        return float(np.mean(estimates[-max(1, steps // 4):]))
    with torch.no_grad():
        half = len(x) // 2
        usable = (len(x) - half) // b * b
        held = [reference_bound(rule, critic(xs[half + i: half + i + b], ys[half + i: half + i + b]))[1]
                for i in range(0, usable, b)]
    return float(torch.stack(held).mean())
