"""Variational bounds on a score matrix, exactly as /work/shared/MATH.md states them.

`scores[..., i, j] = T(x_i, y_j)`: positives on the diagonal, the B(B-1) entries off it are
pairs from the product of marginals. Every function takes (..., B, B) and returns (...) (a
scalar for one matrix), differentiable, in nats. Leading dimensions let one call score many
critics trained together as one batched model.

Bounds with a baseline (`tuba_bound`, `interpolated_bound`) take one log-baseline per row:
the rows index the variable the baseline conditions on (pass `scores.mT` for a baseline on y).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from plugins.estimators.divergences import Divergence, divergence

_GAN_JS = divergence("gan_js")


def _batch_size(scores: Tensor) -> int:
    if scores.dim() < 2 or scores.shape[-1] != scores.shape[-2] or scores.shape[-1] < 2:
        raise ValueError(f"a score matrix must have shape (..., B, B) with B >= 2, got {tuple(scores.shape)}")
    return scores.shape[-1]


def _eye(scores: Tensor) -> Tensor:
    b = scores.shape[-1]
    return torch.eye(b, dtype=torch.bool, device=scores.device)


def positive_mean(scores: Tensor) -> Tensor:
    """mean_i S_ii: the critic averaged over the joint samples."""
    _batch_size(scores)
    return scores.diagonal(dim1=-2, dim2=-1).mean(-1)


def mean_offdiag(values: Tensor) -> Tensor:
    """Mean over the B(B-1) entries with i != j (the diagonal is zeroed, so infinities there are ignored)."""
    b = _batch_size(values)
    return values.masked_fill(_eye(values), 0.0).sum((-2, -1)) / (b * (b - 1))


def log_mean_exp_offdiag(scores: Tensor) -> Tensor:
    """log mean_{i != j} exp(S_ij), stable: diagonal masked with -inf, then logsumexp - log B(B-1)."""
    b = _batch_size(scores)
    masked = scores.masked_fill(_eye(scores), -math.inf)
    return masked.flatten(-2).logsumexp(-1) - math.log(b * (b - 1))


def dv_bound(scores: Tensor) -> Tensor:
    """Donsker-Varadhan (the MINE value): pos - log mean_offdiag exp(S). An estimate, not a batch lower bound."""
    return positive_mean(scores) - log_mean_exp_offdiag(scores)


def smile_value(scores: Tensor, tau: float) -> Tensor:
    """SMILE (Song & Ermon 2020): DV with the partition term on exp(clamp(S, -tau, tau)); tau = inf is DV."""
    return positive_mean(scores) - log_mean_exp_offdiag(scores.clamp(-tau, tau))


def tuba_bound(scores: Tensor, log_baseline: Tensor) -> Tensor:
    """TUBA (Poole et al. 2019): 1 + mean_i(S_ii - log a_i) - mean_offdiag exp(S_ij - log a_i).

    `log_baseline` has shape (..., B), one entry per row.
    """
    b = _batch_size(scores)
    if log_baseline.shape[-1] != b:
        raise ValueError(f"log_baseline needs one entry per row ({b}), got shape {tuple(log_baseline.shape)}")
    shifted = scores - log_baseline.unsqueeze(-1)
    return 1.0 + positive_mean(shifted) - log_mean_exp_offdiag(shifted).exp()


def nwj_bound(scores: Tensor) -> Tensor:
    """NWJ / MINE-f: pos - e^{-1} mean_offdiag exp(S), i.e. TUBA with log a = 1. Optimal critic 1 + log r."""
    b = _batch_size(scores)
    return tuba_bound(scores, scores.new_ones(scores.shape[:-2] + (b,)))


def infonce_bound(scores: Tensor) -> Tensor:
    """InfoNCE (van den Oord et al. 2018): log B + mean_i(S_ii - logsumexp_j S_ij); never exceeds log B."""
    b = _batch_size(scores)
    return math.log(b) + _InfoNCETerm.apply(scores)


class _InfoNCETerm(torch.autograd.Function):
    """mean_i(S_ii - logsumexp_j S_ij) with its gradient (1[i=j] - softmax_j S_ij) / B.

    Autograd's logsumexp recomputes the softmax for its backward (a subtraction and an exp over
    all B^2 entries); keeping the forward's softmax saves both, a quarter of a small grouped
    critic's step. Not twice differentiable (no bound needs it).
    """

    @staticmethod
    def forward(ctx, scores: Tensor) -> Tensor:
        peak = scores.amax(-1, keepdim=True)
        softmax = (scores - peak).exp_()
        total = softmax.sum(-1, keepdim=True)
        softmax.div_(total)
        ctx.save_for_backward(softmax)
        log_partition = total.log_().add_(peak).squeeze(-1)
        return (scores.diagonal(dim1=-2, dim2=-1) - log_partition).mean(-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (softmax,) = ctx.saved_tensors
        per_row = (grad / softmax.shape[-1]).unsqueeze(-1)
        out = softmax.mul(per_row.unsqueeze(-1).neg())
        out.diagonal(dim1=-2, dim2=-1).add_(per_row)
        return out


def fgan_bound(scores: Tensor, divergence: Divergence) -> Tensor:
    """f-GAN (Nowozin et al. 2016): mean g(S_ii) - mean_offdiag f*(g(S_ij)) <= D_f(joint || product)."""
    positive = divergence.activation(scores.diagonal(dim1=-2, dim2=-1)).mean(-1)
    return positive - mean_offdiag(divergence.conjugate_of_activation(scores))


def js_objective(scores: Tensor) -> Tensor:
    """Deep InfoMax training objective: mean -softplus(-S_ii) - mean_offdiag softplus(S_ij).

    It is the f-GAN bound of the GAN-JS row (g = -softplus(-v), f*(g(v)) = softplus(v)); its
    optimal critic is log r.
    """
    return fgan_bound(scores, _GAN_JS)


def js_value(scores: Tensor) -> Tensor:
    """MI value of a critic trained with the JS objective: NWJ on S + 1 (its optimum is log r, not 1 + log r).

    Evaluating nwj(S) instead, as widely-copied reference code does, is biased by about -1/e.
    """
    return nwj_bound(scores + 1.0)


def leave_one_out_log_mean_exp(scores: Tensor) -> Tensor:
    """loo[..., i, j] = log (1/(B-1)) sum_{l != j} exp S_il, without cancellation.

    With M the row maximum at column k and s = sum_l exp(S_il - M) >= 1: for j != k the
    remaining sum is s - exp(S_ij - M) >= 1 (no cancellation); for j = k it is computed
    directly by masking column k, since s - 1 may underflow.
    """
    b = _batch_size(scores)
    row_max, argmax = scores.max(-1, keepdim=True)
    row_max = row_max.detach()
    ratio = (scores - row_max).exp()
    total = ratio.sum(-1, keepdim=True)
    is_max = F.one_hot(argmax.squeeze(-1), b).bool()
    # The j = k entries would take log(s - 1); fill them before the log so no NaN gradient leaks.
    without_j = row_max + (total - ratio).masked_fill(is_max, 1.0).log()
    without_max = scores.masked_fill(is_max, -math.inf).logsumexp(-1, keepdim=True)
    return torch.where(is_max, without_max, without_j) - math.log(b - 1)


def interpolated_bound(scores: Tensor, log_baseline: Tensor, alpha: float) -> Tensor:
    """Interpolated bound I_alpha (Poole et al. 2019, eq. 11; their reference implementation).

    log a_ij = logaddexp(log alpha + loo_ij, log(1 - alpha) + b_i) with the leave-one-out
    loo of `leave_one_out_log_mean_exp`. A positive S_ii meets the baselines a_ij (j != i),
    whose sample average includes its own partner; a marginal pair S_ij meets a_ii, which
    excludes the row's partner. alpha = 0 is TUBA with baseline b; alpha = 1 is an InfoNCE
    bound over B - 1 samples, capped at log(B - 1).
    """
    b = _batch_size(scores)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if log_baseline.shape[-1] != b:
        raise ValueError(f"log_baseline needs one entry per row ({b}), got shape {tuple(log_baseline.shape)}")
    log_alpha = math.log(alpha) if alpha > 0 else -math.inf
    log_rest = math.log1p(-alpha) if alpha < 1 else -math.inf
    loo = leave_one_out_log_mean_exp(scores)
    if alpha == 1.0:
        log_a = loo
    elif alpha == 0.0:
        log_a = log_baseline.unsqueeze(-1).expand_as(scores)
    else:
        log_a = torch.logaddexp(log_alpha + loo, log_rest + log_baseline.unsqueeze(-1))
    diag = scores.diagonal(dim1=-2, dim2=-1)
    joint = mean_offdiag(diag.unsqueeze(-1) - log_a)
    marginal = log_mean_exp_offdiag(scores - log_a.diagonal(dim1=-2, dim2=-1).unsqueeze(-1)).exp()
    return 1.0 + joint - marginal


def nce_loss(scores: Tensor, negatives: float) -> Tensor:
    """NCE (Gutmann & Hyvarinen 2010) logistic loss, nu negatives per positive, logit S - log nu.

    All B(B-1) marginal pairs serve as negatives, weighted so they count as nu per positive;
    at the optimum S = log r.
    """
    logits = scores - math.log(negatives)
    positive = F.softplus(-logits.diagonal(dim1=-2, dim2=-1)).mean(-1)
    return positive + negatives * mean_offdiag(F.softplus(logits))


def nce_value(scores: Tensor) -> Tensor:
    """Plug-in MI of an NCE critic: mean_i S_ii (evaluate on held-out positives)."""
    return positive_mean(scores)


def log_mean_exp_offdiag_rows(scores: Tensor) -> Tensor:
    """(..., B): log (1/(B-1)) sum_{j != i} exp S_ij per row i (a row's own positive left out)."""
    b = _batch_size(scores)
    return scores.masked_fill(_eye(scores), -math.inf).logsumexp(-1) - math.log(b - 1)


# Bounds from a conditional density: `log_q[..., i, j] = log q(y_j | x_i)`, positives on the diagonal.

def club_bound(log_q: Tensor) -> Tensor:
    """CLUB (Cheng et al. 2020): mean_i log q(y_i|x_i) - mean_{i,j} log q(y_j|x_i); >= I when q = p(y|x)."""
    _batch_size(log_q)
    return positive_mean(log_q) - log_q.mean((-2, -1))


def club_sample_bound(log_q: Tensor) -> Tensor:
    """CLUB with one negative per positive: y_{i+1} beside x_i (rows are a random sample, so the
    next row is a uniformly random other y). Its expectation is pos - E log q over independent pairs; club_bound,
    whose negatives include the diagonal as Cheng et al.'s do, has (1 - 1/B) of that."""
    b = _batch_size(log_q)
    negatives = log_q.gather(-1, torch.arange(1, b + 1, device=log_q.device).remainder_(b).expand(
        *log_q.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return positive_mean(log_q) - negatives.mean(-1)


def l1out_pmi(log_q: Tensor) -> Tensor:
    """(..., B): log q(y_i|x_i) - log (1/(B-1)) sum_{j != i} q(y_i|x_j), the leave-one-out log ratio."""
    return log_q.diagonal(dim1=-2, dim2=-1) - log_mean_exp_offdiag_rows(log_q.mT)


def l1out_bound(log_q: Tensor) -> Tensor:
    """L1Out (Poole et al. 2019): the mean leave-one-out log ratio; >= I in expectation when q = p(y|x)."""
    return l1out_pmi(log_q).mean(-1)


def flo_bound(scores: Tensor, u: Tensor) -> Tensor:
    """FLO (Guo et al. 2022): 1 - mean_i [u_i + exp(-u_i) mean_{j != i} exp(S_ij - S_ii)], u (..., B) on the
    positives. A lower bound for every critic and u (-log t = max_u 1 - u - e^{-u} t), not capped at log B."""
    diagonal = scores.diagonal(dim1=-2, dim2=-1)
    return 1.0 - (u + (log_mean_exp_offdiag_rows(scores) - diagonal - u).exp()).mean(-1)


__all__ = [
    "club_bound", "club_sample_bound", "flo_bound", "l1out_bound", "l1out_pmi", "log_mean_exp_offdiag_rows",
    "dv_bound", "fgan_bound", "infonce_bound", "interpolated_bound", "js_objective", "js_value",
    "leave_one_out_log_mean_exp", "log_mean_exp_offdiag", "mean_offdiag", "nce_loss", "nce_value",
    "nwj_bound", "positive_mean", "smile_value", "tuba_bound",
]
