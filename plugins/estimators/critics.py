"""Critics: networks mapping a batch to the score matrix S[i, j] = T(x_i, y_j).

Every critic also accepts inputs with a leading group dimension, (G, B, d) -> (G, B, B):
`stack_critics` turns G critics of one architecture into one batched model whose weights
carry that dimension, so many cells train as one model (harness.training.train_critics).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from plugins.estimators import cpu_gemm
from plugins.estimators.variational import Activation

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
        return self.g(x) @ self.h(y).mT


class ConcatCritic(nn.Module):
    """One MLP on [x_i, y_j] for all B^2 pairs: more expressive, about B/2 times the cost."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.net = mlp(dim_x + dim_y, hidden, 1, layers, activation)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        b = x.shape[-2]
        rows = x.unsqueeze(-2).expand(*x.shape[:-1], b, x.shape[-1])
        columns = y.unsqueeze(-3).expand(*y.shape[:-2], b, b, y.shape[-1])
        return self.net(torch.cat([rows, columns], dim=-1)).squeeze(-1)


class BilinearCritic(nn.Module):
    """S = g(x) W h(y)^T with MLP embeddings g, h and a learned W."""

    def __init__(self, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int, activation: Activation):
        super().__init__()
        self.g = mlp(dim_x, hidden, embed_dim, layers, activation)
        self.h = mlp(dim_y, hidden, embed_dim, layers, activation)
        self.weight = nn.Parameter(torch.eye(embed_dim))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.g(x) @ self.weight @ self.h(y).mT


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
        scores = v_q.unsqueeze(-2).expand(*v_q.shape[:-1], p.shape[-2], v_q.shape[-1])
        return scores.diagonal_scatter(v_p, dim1=-2, dim2=-1)


class GroupedLinear(nn.Module):
    """G independent linear layers as one: weight (G, out, in), bias (G, 1, out), input (G, ..., in).

    Each member's arithmetic is the same whatever stands beside it in the group (see
    _GroupedLinear), so a member trained in a group gets the bits it gets alone, not merely
    numbers close to them.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    @classmethod
    def stack(cls, layers: Sequence[nn.Linear]) -> GroupedLinear:
        weight = torch.stack([layer.weight.detach() for layer in layers])
        if any(layer.bias is None for layer in layers):
            return cls(weight, None)
        return cls(weight, torch.stack([layer.bias.detach() for layer in layers]).unsqueeze(1))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        out = _GroupedLinear.apply(flat, self.weight, self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class _GroupedLinear(torch.autograd.Function):
    """Batched nn.Linear: torch's batched matmuls, or oneDNN member by member (cpu_gemm).

    In the batched form, the weight gradient is formed as g^T x, in the parameter's (out, in)
    layout, as nn.Linear does; autograd's baddbmm would form x^T g and copy it, rounding
    differently.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.onednn = cpu_gemm.use_onednn(x, weight)
        if ctx.onednn:
            return cpu_gemm.per_member(x, weight, bias)
        if weight.shape[1] == 1:
            # One output: the batched kernel for (M, in) x (in, 1) rounds differently for G = 1 and
            # G > 1; (1, in) x (in, M) does not.
            out = torch.bmm(weight, x.mT) if bias is None else torch.baddbmm(bias, weight, x.mT)
            return out.mT
        return torch.bmm(x, weight.mT) if bias is None else torch.baddbmm(bias, x, weight.mT)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        product = cpu_gemm.per_member if ctx.onednn else lambda a, b, _: torch.bmm(a, b.mT)
        grad_x = product(grad, weight.mT, None) if ctx.needs_input_grad[0] else None
        grad_weight = product(grad.mT, x.mT, None) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1, keepdim=True) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def stack_critics(members: Sequence[nn.Module]) -> nn.Module:
    """One model whose forward on (G, B, d) inputs equals stacking each member's forward.

    Members must be the same class with the same layer shapes. Each nn.Linear becomes a
    GroupedLinear holding the members' weights; any other parameter (the bilinear W) is
    stacked along a new first dimension, which the critics' forward broadcasts over.
    """
    first = members[0]
    shapes = [[(name, tuple(p.shape)) for name, p in m.named_parameters()] for m in members]
    if any(type(m) is not type(first) or s != shapes[0] for m, s in zip(members, shapes, strict=True)):
        raise ValueError("only critics of one class and one set of layer shapes can be stacked")
    if isinstance(first, SeparableCritic | BilinearCritic) and _same_shapes(first.g, first.h):
        return TwoTowerGroup(members)
    grouped = copy.deepcopy(first)
    named = [dict(m.named_modules()) for m in members]
    for name, module in list(grouped.named_modules()):
        if isinstance(module, nn.Linear):
            _replace(grouped, name, GroupedLinear.stack([modules[name] for modules in named]))
        elif module is not grouped and next(module.parameters(recurse=False), None) is not None and \
                not isinstance(module, GroupedLinear):
            raise ValueError(f"cannot stack {type(module).__name__} layers; only nn.Linear and direct parameters")
    for name, _ in list(grouped.named_parameters(recurse=False)):
        stacked = torch.stack([dict(m.named_parameters(recurse=False))[name].detach() for m in members])
        setattr(grouped, name, nn.Parameter(stacked))
    return grouped


class TwoTowerGroup(nn.Module):
    """Stacked separable or bilinear critics whose g and h have one shape (dim_x = dim_y).

    The G g-networks and G h-networks run as one group of 2G (one baddbmm per layer instead
    of two): on the staircase critic this measured about 8% faster per step on one CPU thread.
    """

    def __init__(self, members: Sequence[SeparableCritic | BilinearCritic]):
        super().__init__()
        self.towers = stack_critics([_Tower(m.g) for m in members] + [_Tower(m.h) for m in members]).net
        self.weight = (nn.Parameter(torch.stack([m.weight.detach() for m in members]))
                       if isinstance(members[0], BilinearCritic) else None)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gx, hy = self.towers(torch.cat([x, y])).chunk(2)
        return (gx if self.weight is None else gx @ self.weight) @ hy.mT


class _Tower(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    return [tuple(p.shape) for p in a.parameters()] == [tuple(p.shape) for p in b.parameters()]


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


CRITICS = {"separable": SeparableCritic, "concat": ConcatCritic, "bilinear": BilinearCritic}
