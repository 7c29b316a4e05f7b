"""The raw-input baseline: the dataset's own items as features, whatever its items are."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.api import Budget, Embeddings
from harness.errors import UserError


def raw_features(dataset: Any) -> np.ndarray:
    items = getattr(dataset, "items", None)
    if items in ("images", "sequences"):
        inputs = np.asarray(dataset.inputs, dtype=np.float32)
        return inputs.reshape(len(inputs), -1)
    if items == "graph":
        features = dataset.features
        if hasattr(features, "toarray"):  # scipy.sparse bag-of-words
            features = features.toarray()
        return np.asarray(features, dtype=np.float32)
    if items == "graphs":
        # Sum pooling: the readout of GIN / InfoGraph, so the baseline sees the same counts they do.
        return np.stack([np.asarray(nodes, dtype=np.float32).sum(0) for nodes, _edges in dataset.graphs])
    raise UserError(f"the raw baseline knows dataset items images, sequences, graph and graphs, not {items!r}.")


class RawInput:
    def __init__(self, params: Any) -> None:
        self.params = params

    def fit(self, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings:
        # Nothing is trained: a baseline, so no paper's number or untrained twin is put beside it.
        return Embeddings(features=raw_features(dataset), diagnostics={"epochs": 0}, untrained_baseline=True)
