"""Contrastive Predictive Coding (van den Oord et al. 2018, arXiv:1807.03748).

z_t = encoder(step t); c_t = GRU(z_1..z_t); for k = 1..K a bilinear map W_k scores
s_ij = (W_k c_t^i) . z_{t+k}^j for every pair (i, j) of the batch: the other items' z_{t+k} are
the negatives (in-batch negatives, section 2.3). One B x B score matrix per (t, k), positives on the
diagonal, goes through `bounds.infonce_bound`; the loss is minus its mean over t and k.

Steps are the images of a sequence (inputs N x T x C x H x W, a 2-D conv encoder per image) or
non-overlapping windows of a series (inputs N x C x L, a 1-D conv encoder per window).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from harness.api import Budget, Embeddings
from harness.errors import UserError
from plugins.encoders import checkpoint_due
from plugins.encoders.convnets import ConvTrunk, batches, check_device, embed_in_batches, seed_everything
from plugins.estimators import bounds


class CPCModel(nn.Module):
    def __init__(self, dims: int, in_channels: int, grid: int, latent_dim: int, context_dim: int,
                 steps_ahead: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.encoder = ConvTrunk(dims, in_channels, latent_dim, grid=grid)
        self.context = nn.GRU(latent_dim, context_dim, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(context_dim, latent_dim, bias=False) for _ in range(steps_ahead))

    def steps(self, x: Tensor) -> Tensor:
        """The per-step inputs B x T x ...: images as they are, series cut into windows."""
        if x.dim() == 3:
            usable = (x.shape[-1] // self.window) * self.window
            return x[..., :usable].unfold(-1, self.window, self.window).transpose(1, 2)  # B x T x C x w
        return x

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(latents z: B x T x latent_dim, contexts c: B x T x context_dim)."""
        steps = self.steps(x)
        b, t = steps.shape[:2]
        z = self.encoder(steps.reshape(b * t, *steps.shape[2:]))[1].reshape(b, t, -1)
        c, _ = self.context(z)
        return z, c

    def infonce(self, x: Tensor) -> Tensor:
        """InfoNCE of each look-ahead k (a vector of K values), averaged over the positions t."""
        z, c = self.encode(x)
        values = []
        for k, predictor in enumerate(self.predictors, start=1):
            prediction = predictor(c[:, :-k])  # B x (T-k) x latent
            scores = torch.einsum("itd,jtd->tij", prediction, z[:, k:])  # one B x B matrix per t
            values.append(bounds.infonce_bound(scores).mean())
        return torch.stack(values)


def readout(model: CPCModel, x: Tensor, how: str) -> Tensor:
    z, c = model.encode(x)
    if how == "context_last":
        return c[:, -1]
    if how == "context_mean":
        return c.mean(1)
    if how == "encoder_mean":
        return z.mean(1)
    return torch.cat([c[:, -1], c.mean(1), z.mean(1)], dim=1)


def _check_inputs(dataset: Any, window: int, steps_ahead: int) -> np.ndarray:
    inputs = getattr(dataset, "inputs", None)
    items = getattr(dataset, "items", "?")
    if inputs is None or items != "sequences" or np.ndim(inputs) not in (3, 5):
        raise UserError(
            "CPC reads sequences from a dataset's `inputs`: series N x C x L or sequences of images "
            f"N x T x C x H x W; this dataset's items are {items!r}, with inputs of shape "
            f"{getattr(inputs, 'shape', None)}."
        )
    steps = inputs.shape[-1] // window if np.ndim(inputs) == 3 else inputs.shape[1]
    if steps <= steps_ahead:
        raise UserError(
            f"CPC predicting {steps_ahead} step(s) ahead needs more than {steps_ahead} steps per item, but "
            f"items have {steps} (series length {inputs.shape[-1]}, window {window}); lower steps_ahead or window."
        )
    return np.ascontiguousarray(inputs, dtype=np.float32)


def fit_cpc(params: Any, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings:
    started = time.perf_counter()
    inputs = _check_inputs(dataset, params.window, params.steps_ahead)
    where = check_device(device)
    generator = seed_everything(seed)
    if inputs.ndim == 5:
        dims, channels, grid = 2, inputs.shape[2], 4
    else:
        dims, channels, grid = 1, inputs.shape[1], max(2, min(8, params.window // 4))
    model = CPCModel(dims, channels, grid, params.latent_dim, params.context_dim, params.steps_ahead,
                     params.window).to(where)
    train_idx = dataset.splits.get("train", np.arange(len(inputs))) if dataset.splits else np.arange(len(inputs))
    train = torch.as_tensor(inputs[train_idx], device=where)

    @torch.no_grad()
    def current_estimate() -> float:
        model.eval()
        values = [model.infonce(train[idx.to(where)]).mean() for idx in batches(len(train), budget.batch_size,
                                                                               generator)]
        model.train()
        return float(torch.stack(values).mean())

    trajectory = [(0, current_estimate())]
    per_k: list[tuple[int, list[float]]] = []
    checkpoints: dict[int, np.ndarray] = {}

    def embed() -> np.ndarray:
        model.eval()
        return embed_in_batches(lambda x: readout(model, x, params.readout), inputs, where)

    if not params.random_init:
        optimiser = torch.optim.Adam(model.parameters(), lr=params.lr)
        record_every = max(1, budget.steps // 20)
        step, sums, count = 0, torch.zeros(params.steps_ahead, device=where), 0
        while step < budget.steps:
            for idx in batches(len(train), budget.batch_size, generator):
                values = model.infonce(train[idx.to(where)])
                loss = -values.mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                step, sums, count = step + 1, sums + values.detach(), count + 1
                if step % record_every == 0 or step == budget.steps:
                    mean_k = (sums / count).cpu()
                    per_k.append((step, mean_k.tolist()))
                    trajectory.append((step, float(mean_k.mean())))
                    sums, count = torch.zeros_like(sums), 0
                if checkpoint_due(params.checkpoint_every, step, budget.steps):
                    checkpoints[step] = embed()
                    model.train()
                if step == budget.steps:
                    break
    features = embed()
    batch = min(budget.batch_size, len(train))
    return Embeddings(
        features=features,
        trajectory=trajectory,
        diagnostics={
            "steps": 0 if params.random_init else budget.steps,
            "epochs": 0 if params.random_init else round(budget.steps * batch / len(train)),
            "objective": "infonce",
            "trajectory_term": f"InfoNCE averaged over k = 1..{params.steps_ahead} and the steps since the last "
                               f"point, nats (cap log B = "
                               f"{np.log(batch):.3f})",
            "infonce_per_k": per_k,
            "train_items": int(len(train)),
            "fit_s": time.perf_counter() - started,
        },
        untrained_baseline=params.random_init,
        checkpoints=checkpoints,
    )
