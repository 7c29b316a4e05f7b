"""Small convolutional encoders and the shared plumbing of the DIM and CPC encoders.

2-D trunks serve 8x8 images, 1-D trunks serve series or windows of series. Each trunk keeps
its last feature map ("local features": channels x locations) and maps it to one vector.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from harness.errors import UserError
from plugins.estimators import bounds

# (training objective, MI value) on a score matrix with positives on the diagonal, both from the
# bounds module: DIM's JS trains with js_objective and reports NWJ on S + 1 (MATH.md).
OBJECTIVES: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "js": (bounds.js_objective, bounds.js_value),
    "dv": (bounds.dv_bound, bounds.dv_bound),
    "infonce": (bounds.infonce_bound, bounds.infonce_bound),
    "nwj": (bounds.nwj_bound, bounds.nwj_bound),
}


def objective_pair(name: str) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}.")
    return OBJECTIVES[name]


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def check_device(device: str) -> torch.device:
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise UserError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda[:N]'.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} was asked for, but CUDA is not available here; use 'cpu'.")
    return resolved


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled index batches of one epoch; the ragged last batch is dropped (bounds depend on B)."""
    size = min(batch_size, n)
    if size < 2:
        raise UserError(f"contrastive training needs at least 2 items per batch, got {n} item(s).")
    order = torch.randperm(n, generator=generator)
    for start in range(0, n - size + 1, size):
        yield order[start:start + size]


class ConvTrunk(nn.Module):
    """Two convolutions (the second strided) to a channels x locations map, then an MLP to a vector.

    dims=2 takes (B, C, H, W), dims=1 takes (B, C, L). The map is pooled to `grid` locations per
    spatial axis, so the head's size does not depend on the input's.
    """

    def __init__(self, dims: int, in_channels: int, out_dim: int, channels: int = 64, grid: int = 4,
                 hidden: int = 256) -> None:
        super().__init__()
        conv, norm, pool = (
            (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d) if dims == 2
            else (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d)
        )
        kernel = 3 if dims == 2 else 5
        self.features = nn.Sequential(
            conv(in_channels, channels // 2, kernel, padding=kernel // 2), norm(channels // 2), nn.ReLU(),
            conv(channels // 2, channels, kernel, stride=2, padding=kernel // 2), norm(channels), nn.ReLU(),
            pool(grid),
        )
        self.channels = channels
        self.locations = grid**dims
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * self.locations, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(local features B x channels x locations, global vector B x out_dim)."""
        local = self.features(x)
        return local.flatten(2), self.head(local)


def grid_for(shape: tuple[int, ...]) -> int:
    """Locations per axis of the local map: 4 for 8x8 images, up to 16 along a series."""
    return 4 if len(shape) == 3 else max(2, min(16, math.ceil(shape[-1] / 8)))


@torch.no_grad()
def embed_in_batches(function: Callable[[Tensor], Tensor], inputs: np.ndarray, device: torch.device,
                     batch_size: int = 512) -> np.ndarray:
    rows = []
    for start in range(0, len(inputs), batch_size):
        chunk = torch.as_tensor(inputs[start:start + batch_size], device=device)
        rows.append(function(chunk).float().cpu().numpy())
    return np.concatenate(rows).astype(np.float32)
