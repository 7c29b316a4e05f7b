"""InfoGraph (Sun et al. 2020, arXiv:1908.01000), unsupervised graph-level representations.

A GIN encoder's node embeddings (all layers concatenated) and sum-pooled graph embedding pass
through two MLP heads; the JS objective scores every node against its own graph (positive) and
against the other graphs of the mini-batch (negatives). An optional prior term (DIM's prior
matching, weight gamma) pushes graph embeddings towards uniform[0, 1) samples adversarially.
The representation handed downstream is the encoder's pooled embedding, not the heads' output.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn

from harness import Budget, Embeddings
from harness.errors import UserError
from plugins.encoders import checkpoint_due, js_pairs
from plugins.encoders.gin import (
    GINEncoder,
    MLPWithShortcut,
    batches,
    embed_all,
    local_global_scores,
    xavier_init,
)
from plugins.encoders.graphs import InfoGraphParams


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return -grad


class InfoGraphModel(nn.Module):
    def __init__(self, in_features: int, hidden: int, layers: int, prior: bool) -> None:
        super().__init__()
        self.encoder = GINEncoder(in_features, hidden, layers)
        dim = self.encoder.out_features
        self.local_head = MLPWithShortcut(dim)
        self.global_head = MLPWithShortcut(dim)
        self.prior_critic = (
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
            if prior else None
        )
        xavier_init(self)

    def local_global(self, batch) -> tuple[Tensor, Tensor, Tensor]:
        graph_emb, node_emb = self.encoder(batch)
        positive, negative = local_global_scores(
            self.local_head(node_emb), self.global_head(graph_emb), batch.graph_of
        )
        return positive, negative, graph_emb

    def prior_objective(self, graph_emb: Tensor, generator: torch.Generator) -> Tensor:
        """JS objective of the prior critic (uniform samples vs embeddings); the encoder sees it reversed."""
        prior = torch.rand(graph_emb.shape, generator=generator).to(graph_emb.device)
        real = self.prior_critic(prior).squeeze(-1)
        fake = self.prior_critic(_ReverseGradient.apply(graph_emb)).squeeze(-1)
        return js_pairs.js_objective(real, fake)


def check_graphs(dataset, method: str) -> None:
    if getattr(dataset, "items", None) != "graphs":
        raise UserError(f"{method} encodes whole graphs (dataset items 'graphs'), got items {getattr(dataset, 'items', None)!r}.")


class InfoGraph:
    def __init__(self, params: InfoGraphParams) -> None:
        self.params = params

    def fit(self, dataset, budget: Budget, device: str, seed: int) -> Embeddings:
        check_graphs(dataset, "InfoGraph")
        p = self.params
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        graphs = dataset.graphs
        model = InfoGraphModel(graphs[0][0].shape[1], p.hidden, p.layers, p.prior).to(device)
        trajectory: list[tuple[int, float]] = []
        checkpoints: dict[int, np.ndarray] = {}
        diagnostics: dict = {"epochs_run": 0, "random_init": p.random_init}
        if not p.random_init:
            optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
            losses = []
            for epoch in range(1, budget.epochs + 1):
                model.train()
                values, losses, estimate = [], [], float("nan")
                for chunk, batch in batches(graphs, rng.permutation(len(graphs)), budget.batch_size, device):
                    if len(chunk) < 2:  # one graph has no negatives
                        continue
                    positive, negative, graph_emb = model.local_global(batch)
                    loss = -js_pairs.js_objective(positive[:, None], negative)
                    if model.prior_critic is not None:
                        loss = loss - p.gamma * model.prior_objective(graph_emb, generator)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    with torch.no_grad():
                        objective = js_pairs.js_objective(positive[:, None], negative).item()
                        values.append(objective)
                        estimate = js_pairs.js_value(positive[:, None], negative).item()
                if not np.isfinite(losses).all():
                    raise FloatingPointError(f"InfoGraph loss became non-finite at epoch {epoch}")
                trajectory.append((epoch, float(np.mean(values))))
                if checkpoint_due(p.checkpoint_every, epoch, budget.epochs):
                    checkpoints[epoch] = embed_all(model.encoder, graphs, max(budget.batch_size, 256), device)
            diagnostics = {
                "epochs_run": budget.epochs, "final_loss": float(np.mean(losses)), "random_init": False,
                "final_js_objective": trajectory[-1][1], "final_mi_estimate": estimate,
            }
        features = embed_all(model.encoder, graphs, max(budget.batch_size, 256), device)
        diagnostics["seconds"] = time.perf_counter() - start
        return Embeddings(features=features, trajectory=trajectory, diagnostics=diagnostics,
                          untrained_baseline=p.random_init, checkpoints=checkpoints)


def build_infograph(params: InfoGraphParams) -> InfoGraph:
    return InfoGraph(params)
