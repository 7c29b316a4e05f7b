"""Deep InfoMax (Hjelm et al. 2019, arXiv:1808.06670) for images (2-D convs) and series (1-D convs).

Loss = -(alpha * global MI + beta * local MI) + gamma * prior matching, where
- global MI scores (feature map of item i, global vector of item j) in a B x B matrix;
- local MI scores (local feature at location m of item i, global vector of item j): one B x B
  matrix per location, the bound averaged over locations (DIM section 3.2, "encode and dot product");
- prior matching (section 3.3) is adversarial in latent space: a discriminator tells samples of a
  uniform prior on [0, 1]^d from sigmoid(global vector), and the encoder learns to fool it.
Each MI term is one of the bounds of plugins.estimators.bounds on its score matrix, positives on
the diagonal; the representation handed to the probe is the global vector.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.api import Budget, Embeddings
from harness.errors import UserError
from plugins.encoders import checkpoint_due
from plugins.encoders.convnets import (
    ConvTrunk,
    batches,
    check_device,
    embed_in_batches,
    grid_for,
    objective_pair,
    seed_everything,
)


class DIMModel(nn.Module):
    def __init__(self, dims: int, in_channels: int, grid: int, embedding_dim: int, critic_dim: int) -> None:
        super().__init__()
        self.encoder = ConvTrunk(dims, in_channels, embedding_dim, grid=grid)
        channels, locations = self.encoder.channels, self.encoder.locations
        # Critics are separable: score = <local or map embedding, global embedding>.
        self.local_embed = nn.Sequential(
            nn.Conv1d(channels, critic_dim, 1), nn.ReLU(), nn.Conv1d(critic_dim, critic_dim, 1)
        )
        self.local_global_embed = nn.Sequential(
            nn.Linear(embedding_dim, critic_dim), nn.ReLU(), nn.Linear(critic_dim, critic_dim)
        )
        self.map_embed = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * locations, critic_dim), nn.ReLU(), nn.Linear(critic_dim, critic_dim)
        )
        self.map_global_embed = nn.Sequential(
            nn.Linear(embedding_dim, critic_dim), nn.ReLU(), nn.Linear(critic_dim, critic_dim)
        )
        self.discriminator = nn.Sequential(
            nn.Linear(embedding_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1)
        )

    def score_matrices(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(local scores M x B x B, global scores B x B, global vectors B x d)."""
        local, vector = self.encoder(x)
        local_keys = self.local_embed(local)  # B x D x M
        global_keys = self.local_global_embed(vector)  # B x D
        local_scores = torch.einsum("idm,jd->mij", local_keys, global_keys)
        global_scores = self.map_embed(local) @ self.map_global_embed(vector).T
        return local_scores, global_scores, vector


def _check_inputs(dataset: Any) -> np.ndarray:
    inputs = getattr(dataset, "inputs", None)
    items = getattr(dataset, "items", "?")
    if inputs is None or items not in ("images", "sequences") or np.ndim(inputs) not in (3, 4):
        raise UserError(
            f"DIM reads images (N x C x H x W) or series (N x C x L) from a dataset's `inputs`; "
            f"this dataset's items are {items!r}, with inputs of shape {getattr(inputs, 'shape', None)}."
        )
    return np.ascontiguousarray(inputs, dtype=np.float32)


def fit_dim(params: Any, dataset: Any, budget: Budget, device: str, seed: int) -> Embeddings:
    started = time.perf_counter()
    inputs = _check_inputs(dataset)
    train_objective, value_of = objective_pair(params.objective)
    where = check_device(device)
    generator = seed_everything(seed)
    dims = inputs.ndim - 2
    model = DIMModel(dims, inputs.shape[1], grid_for(inputs.shape[1:]), params.embedding_dim,
                     params.critic_dim).to(where)
    train_idx = dataset.splits.get("train", np.arange(len(inputs))) if dataset.splits else np.arange(len(inputs))
    train = torch.as_tensor(inputs[train_idx], device=where)

    def mi_terms(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        local_scores, global_scores, vector = model.score_matrices(x)
        local_train, global_train = train_objective(local_scores).mean(), train_objective(global_scores)
        local_value, global_value = value_of(local_scores).mean().detach(), value_of(global_scores).detach()
        return local_train, global_train, local_value, global_value, vector

    @torch.no_grad()
    def current_estimate() -> tuple[float, float]:
        model.eval()
        values = [mi_terms(train[idx.to(where)])[2:4] for idx in batches(len(train), budget.batch_size, generator)]
        model.train()
        return float(torch.stack([v[0] for v in values]).mean()), float(torch.stack([v[1] for v in values]).mean())

    local0, global0 = current_estimate()
    headline = "local" if params.beta > 0 or params.alpha == 0 else "global"
    trajectory = [(0, local0 if headline == "local" else global0)]
    history: dict[str, list[float]] = {"loss": [], "local_mi": [local0], "global_mi": [global0], "prior_loss": []}
    checkpoints: dict[int, np.ndarray] = {}

    def embed() -> np.ndarray:
        model.eval()
        return embed_in_batches(lambda x: model.encoder(x)[1], inputs, where)

    if not params.random_init:
        encoder_parameters = [p for name, p in model.named_parameters() if not name.startswith("discriminator")]
        optimiser = torch.optim.Adam(encoder_parameters, lr=params.lr)
        critic_optimiser = torch.optim.Adam(model.discriminator.parameters(), lr=params.lr)
        for epoch in range(1, budget.epochs + 1):
            sums = np.zeros(4)
            count = 0
            for idx in batches(len(train), budget.batch_size, generator):
                x = train[idx.to(where)]
                local_train, global_train, local_value, global_value, vector = mi_terms(x)
                loss = -(params.alpha * global_train + params.beta * local_train)
                prior_loss = torch.zeros((), device=where)
                if params.gamma > 0:
                    # Non-saturating generator loss: the encoder wants D(sigmoid(y)) to read "prior".
                    prior_loss = F.softplus(-model.discriminator(torch.sigmoid(vector))).mean()
                    loss = loss + params.gamma * prior_loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if params.gamma > 0:
                    prior = torch.rand(vector.shape, device=where)
                    fake = torch.sigmoid(vector.detach())
                    d_loss = F.softplus(-model.discriminator(prior)).mean() + F.softplus(model.discriminator(fake)).mean()
                    critic_optimiser.zero_grad()
                    d_loss.backward()
                    critic_optimiser.step()
                sums += [float(loss.detach()), float(local_value), float(global_value), float(prior_loss.detach())]
                count += 1
            loss_m, local_m, global_m, prior_m = sums / count
            history["loss"].append(loss_m)
            history["local_mi"].append(local_m)
            history["global_mi"].append(global_m)
            history["prior_loss"].append(prior_m)
            trajectory.append((epoch, local_m if headline == "local" else global_m))
            if checkpoint_due(params.checkpoint_every, epoch, budget.epochs):
                checkpoints[epoch] = embed()
                model.train()
    features = embed()
    return Embeddings(
        features=features,
        trajectory=trajectory,
        diagnostics={
            "epochs": 0 if params.random_init else budget.epochs,
            "objective": params.objective,
            "trajectory_term": f"{headline} MI ({params.objective}), nats, mean over the epoch's batches",
            "history": history,
            "train_items": int(len(train)),
            "fit_s": time.perf_counter() - started,
        },
        untrained_baseline=params.random_init,
        checkpoints=checkpoints,
    )
