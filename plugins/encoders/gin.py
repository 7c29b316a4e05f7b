"""The GIN graph encoder shared by InfoGraph and InfoGraph*: sum-pooled readouts of every layer, concatenated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from plugins.encoders.message_passing import GINLayer, GraphBatch, sum_pool


class GINEncoder(nn.Module):
    """Returns (graph embeddings G x L*H, node embeddings N x L*H) for L layers of width H."""

    def __init__(self, in_features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GINLayer(in_features if i == 0 else hidden, hidden) for i in range(layers)
        )
        self.out_features = hidden * layers

    def forward(self, batch: GraphBatch) -> tuple[Tensor, Tensor]:
        x, per_layer = batch.x, []
        for layer in self.layers:
            x = layer(x, batch.edge_index)
            per_layer.append(x)
        nodes = torch.cat(per_layer, 1)
        return sum_pool(nodes, batch.graph_of, batch.num_graphs), nodes


class MLPWithShortcut(nn.Module):
    """InfoGraph's discriminator head: three ReLU layers plus a linear shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.shortcut = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + self.shortcut(x)


def xavier_init(module: nn.Module) -> None:
    """InfoGraph initialises every linear layer Xavier-uniform with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def batches(graphs: Sequence[tuple[np.ndarray, np.ndarray]], index: np.ndarray, batch_size: int,
            device: str | torch.device) -> Iterator[tuple[np.ndarray, GraphBatch]]:
    for start in range(0, len(index), batch_size):
        chunk = index[start:start + batch_size]
        yield chunk, GraphBatch([graphs[i] for i in chunk], device)


@torch.no_grad()
def embed_all(encoder: GINEncoder, graphs: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int,
              device: str | torch.device) -> np.ndarray:
    encoder.eval()
    out = [encoder(batch)[0].cpu() for _, batch in batches(graphs, np.arange(len(graphs)), batch_size, device)]
    return torch.cat(out).numpy()


def local_global_scores(node_emb: Tensor, graph_emb: Tensor, graph_of: Tensor) -> tuple[Tensor, Tensor]:
    """Each node against its own graph (positive, N) and every other graph of the batch (N x G-1)."""
    scores = node_emb @ graph_emb.t()
    own = torch.zeros_like(scores, dtype=torch.bool)
    own[torch.arange(scores.shape[0], device=scores.device), graph_of] = True
    positive = scores[own]
    negative = scores[~own].view(scores.shape[0], scores.shape[1] - 1)
    return positive, negative
