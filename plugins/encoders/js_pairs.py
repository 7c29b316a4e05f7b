"""The JS (GAN-JS) objective for discriminators that score separate positive and negative pairs.

DGI and InfoGraph do not produce a square score matrix: DGI scores each node against the summary
(positive) and each corrupted node against it (negative); InfoGraph scores each node against its
own graph (positive) and every other graph of the batch (negatives). A 2 x 2 matrix
[[p, q], [q, p]] has js_objective = -softplus(-p) - softplus(q), so stacking one such matrix per
(positive, negative) pair and averaging gives exactly mean -softplus(-pos) - mean softplus(neg)
whenever every positive meets the same number of negatives. This module only builds those
matrices; the formulas stay in plugins/estimators/bounds.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from plugins.estimators import bounds


def paired_score_matrices(positive: Tensor, negative: Tensor) -> Tensor:
    """(..., 2, 2) matrices [[p, q], [q, p]] from broadcastable positive and negative scores."""
    p, q = torch.broadcast_tensors(positive, negative)
    return torch.stack([torch.stack([p, q], -1), torch.stack([q, p], -1)], -2)


def js_objective(positive: Tensor, negative: Tensor) -> Tensor:
    """GAN-JS objective mean -softplus(-pos) - mean softplus(neg) (maximise it; -1/2 of DGI's BCE)."""
    return bounds.js_objective(paired_score_matrices(positive, negative)).mean()


def js_value(positive: Tensor, negative: Tensor) -> Tensor:
    """MI estimate of a JS-trained critic: NWJ on S + 1, i.e. mean(pos) + 1 - mean exp(neg)."""
    return bounds.js_value(paired_score_matrices(positive, negative)).mean()
