"""What the harness, not a plugin, owns in every process that fits: seeds, threads, plugin files.

Every fit (inline, in a pool worker, in a Ray task, through `harness.estimate`) is preceded by
`seed_everything(cell seed)`, so a plugin that draws from the global generators of Python,
numpy or torch gets the same bits for the same seed wherever it runs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable

import numpy as np

from harness import registry


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global generator and torch (CPU and every CUDA device)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy's legacy global generator takes 32 bits
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_threads(count: int) -> int:
    """Set torch's intra-op thread count; returns the previous one.

    Deliberately one per worker on CPU: two threads fighting over shared cores run small
    models many times slower than one.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)  # for anything this process starts
    return previous


def set_up(plugin_files: Iterable[str] = ()) -> None:
    """A worker process before its first cell: one thread, and the driver's plugin files."""
    set_threads(1)
    for path in plugin_files:
        registry.load_plugin_file(path)  # the registry remembers loaded files: once per process
