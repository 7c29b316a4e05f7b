"""Density models for the generative and upper-bound estimators, fit by maximum likelihood in the critic loop.

`GaussianHead` is q(target | context): a mixture of diagonal Gaussians (one component: a diagonal-Gaussian
MLP head) whose weights, means and log-scales an MLP reads from the context; without a context it is an
unconditional density. `Autoregressive` chains 1-D heads, q(z | c) = prod_k q(z_k | z_<k, c), so it also
models dependence between the coordinates of z. Both are built from nn.Linear layers only, so
critics.stack_critics groups them like any critic, and they accept leading group dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from plugins.estimators.critics import mlp
from plugins.estimators.variational import Activation

LOG_SCALE_LIMIT = 7.0  # log-scales are squashed into (-7, 7): a collapsing component cannot reach -inf
_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class GaussianHead(nn.Module):
    """q(target | context) with `components` diagonal-Gaussian components; dim_context = 0: q(target)."""

    def __init__(self, dim_context: int, dim_target: int, hidden: int, layers: int, activation: Activation,
                 components: int = 1):
        super().__init__()
        self.dim_target, self.components, self.conditional = dim_target, components, dim_context > 0
        self.width = components * (2 * dim_target + 1)
        # The last layer is padded to a multiple of 16 outputs, so that a member of a group gets the bits it gets
        # alone: MKL's batched GEMM rounds the weight gradient of widths such as 5-7 or 9-11 differently for one
        # member and for many, and fused Adam updates a stacked tensor's tail past its last full 16-float vector
        # differently from the rest (both measured). An unconditional head reads a constant 1.
        self.net = mlp(max(dim_context, 1), hidden, -(-self.width // 16) * 16, layers if self.conditional else 0,
                       activation)

    def mixture(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-weights (..., K), means and log-scales (..., K, d) for each row of context (..., dim_context)."""
        if not self.conditional:
            context = context.new_ones(*context.shape[:-1], 1)
        k, d = self.components, self.dim_target
        logits, means, log_scales = self.net(context)[..., : self.width].split([k, k * d, k * d], dim=-1)
        log_scales = LOG_SCALE_LIMIT * torch.tanh(log_scales / LOG_SCALE_LIMIT)
        return logits.log_softmax(-1), means.unflatten(-1, (k, d)), log_scales.unflatten(-1, (k, d))

    def log_prob(self, context: Tensor, target: Tensor) -> Tensor:
        """(..., B): log q(target_i | context_i), rows aligned."""
        return self._aligned(*self.mixture(context), target)

    def _aligned(self, log_weights: Tensor, means: Tensor, log_scales: Tensor, target: Tensor) -> Tensor:
        z = (target.unsqueeze(-2) - means) * torch.exp(-log_scales)
        per_component = -0.5 * z.square().sum(-1) - log_scales.sum(-1) - self.dim_target * _HALF_LOG_TWO_PI
        return (log_weights + per_component).logsumexp(-1)

    def pairwise_log_prob(self, context: Tensor, target: Tensor) -> Tensor:
        """(..., B, B): entry [i, j] = log q(target_j | context_i), every context against every target.

        The quadratic form sum_d (t_jd - m_id)^2 / s_id^2 is expanded into three matrix products, so the
        cost is that of a separable critic's score matrix, not B^2 network evaluations."""
        log_weights, means, log_scales = self.mixture(context)
        precision = torch.exp(-2 * log_scales)  # (..., B, K, d)
        rows = precision.flatten(-3, -2)  # (..., B K, d)
        quadratic = (rows @ target.square().mT - 2 * (means * precision).flatten(-3, -2) @ target.mT
                     + (means.square() * precision).sum(-1).flatten(-2).unsqueeze(-1))
        quadratic = quadratic.clamp_min(0.0).unflatten(-2, (-1, self.components))  # (..., B, K, B)
        normaliser = log_scales.sum(-1) + self.dim_target * _HALF_LOG_TWO_PI  # (..., B, K)
        pairwise = (log_weights.unsqueeze(-1) - 0.5 * quadratic - normaliser.unsqueeze(-1)).logsumexp(-2)
        # The expansion cancels in float32 for sharp components; the positives, which fit q and drive every bound,
        # are computed directly.
        return pairwise.diagonal_scatter(self._aligned(log_weights, means, log_scales, target), dim1=-2, dim2=-1)


class Autoregressive(nn.Module):
    """q(z | context) = prod_k q(z_k | z_<k, context): one shared 1-D GaussianHead reads [context, z with its
    coordinates k, k+1, ... zeroed, the one-hot code of k] for each coordinate k (all k in one pass).

    With linear means this family holds every Gaussian exactly; the MLP makes it a nonlinear model."""

    def __init__(self, dim_context: int, dim: int, hidden: int, layers: int, activation: Activation,
                 components: int = 1):
        super().__init__()
        self.dim, self.dim_context = dim, dim_context
        self.head = GaussianHead(dim_context + 2 * dim, 1, hidden, layers, activation, components)

    def log_prob(self, context: Tensor | None, z: Tensor) -> Tensor:
        """(..., B): log q(z_i | context_i); context None (or dim_context 0) for q(z)."""
        d = self.dim
        # Built per call rather than kept as buffers: every tensor of a grouped critic's state stacks its members.
        before = torch.ones(d, d, dtype=z.dtype, device=z.device).tril(-1)  # row k keeps z_<k
        code = torch.eye(d, dtype=z.dtype, device=z.device)
        parts = [z.unsqueeze(-2) * before, code.expand(*z.shape[:-1], d, d)]
        if self.dim_context:
            parts.insert(0, context.unsqueeze(-2).expand(*context.shape[:-1], d, self.dim_context))
        return self.head.log_prob(torch.cat(parts, dim=-1), z.unsqueeze(-1)).sum(-1)


class ConditionalCritic(nn.Module):
    """Scores S[i, j] = log q(y_j | x_i) of a learned conditional density (GaussianHead): the critic of the
    bounds built on q(y|x) (CLUB, L1Out, Barber-Agakov). Same constructor as critics.CRITICS, plus components."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation,
                 components: int = 1):
        super().__init__()
        self.q = GaussianHead(dim_x, dim_y, hidden, layers, activation, components)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.q.pairwise_log_prob(x, y)


FACTORS = ("y|x", "y", "x", "xy")  # q(y | x), q(y), q(x), q(x, y)


class LikelihoodCritic(nn.Module):
    """Per-pair log-likelihoods (..., B, F) of F autoregressive density models: column f is
    log q_f(pair) for factors[f], one of FACTORS (difference of entropies: ("y|x", "y"); generative MI:
    ("xy", "x", "y"))."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation,
                 components: int = 1, factors: tuple[str, ...] = ("y|x",)):
        super().__init__()
        unknown = set(factors) - set(FACTORS)
        if unknown or not factors:
            raise ValueError(f"factors must be some of {FACTORS}, got {factors}")
        shapes = {"y|x": (dim_x, dim_y), "y": (0, dim_y), "x": (0, dim_x), "xy": (0, dim_x + dim_y)}
        self.factors = factors
        self.models = nn.ModuleList(Autoregressive(*shapes[f], hidden, layers, activation, components)
                                    for f in factors)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        inputs = {"y|x": (x, y), "y": (None, y), "x": (None, x), "xy": (None, torch.cat([x, y], dim=-1))}
        return torch.stack([model.log_prob(*inputs[f]) for f, model in zip(self.factors, self.models, strict=True)],
                           dim=-1)
