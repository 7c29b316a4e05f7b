"""Critics: networks mapping a batch to the score matrix S[i, j] = T(x_i, y_j)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "elu", "leaky_relu", "tanh"]
ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


def mlp(dim_in: int, hidden: int, dim_out: int, layers: int, activation: Activation) -> nn.Sequential:
    """`layers` hidden layers of width `hidden` (the staircase protocol uses 2 x 256)."""
    blocks: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    blocks.append(nn.Linear(width, dim_out))
    return nn.Sequential(*blocks)


class SeparableCritic(nn.Module):
    """S = g(x) h(y)^T: B + B network evaluations per batch (Poole et al. 2019)."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.g = mlp(dim_x, hidden, embed_dim, layers, activation)
        self.h = mlp(dim_y, hidden, embed_dim, layers, activation)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.g(x) @ self.h(y).T


class ConcatCritic(nn.Module):
    """One MLP on [x_i, y_j] for all B^2 pairs: more expressive, about B/2 times the cost."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.net = mlp(dim_x + dim_y, hidden, 1, layers, activation)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        b = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(b, b, -1), y[None, :, :].expand(b, b, -1)], dim=-1)
        return self.net(pairs).squeeze(-1)


class BilinearCritic(nn.Module):
    """S = g(x) W h(y)^T with MLP embeddings g, h and a learned W."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.g = mlp(dim_x, hidden, embed_dim, layers, activation)
        self.h = mlp(dim_y, hidden, embed_dim, layers, activation)
        self.weight = nn.Parameter(torch.eye(embed_dim))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.g(x) @ self.weight @ self.h(y).T


class TwoSampleCritic(nn.Module):
    """A critic V(z) on single points, for D_f(P||Q) from samples p ~ P and q ~ Q.

    Its score matrix puts V(p_i) on the diagonal and V(q_j) in every off-diagonal entry of
    column j, so the bounds on S (diagonal ~ P, off-diagonal ~ Q) apply unchanged.
    """

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.net = mlp(dim_x, hidden, 1, layers, activation)

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        v_p, v_q = self.net(p).squeeze(-1), self.net(q).squeeze(-1)
        scores = v_q[None, :].expand(p.shape[0], -1)
        return scores.diagonal_scatter(v_p)


CRITICS = {"separable": SeparableCritic, "concat": ConcatCritic, "bilinear": BilinearCritic}
