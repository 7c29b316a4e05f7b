"""Array datasets (images, series, sequences of images): one item per row of `inputs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass
class ArrayDataset:
    """Items stacked in `inputs` (float32, one item per row) with integer labels and a fixed split."""

    name: str
    items: Literal["images", "sequences"]
    inputs: np.ndarray
    labels: np.ndarray  # int64 in 0..num_classes-1
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    evaluation: str = "logistic_fixed_split"
    num_classes: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.inputs)} inputs but {len(self.labels)} labels")
        if not self.num_classes:
            self.num_classes = int(np.unique(self.labels).size)
