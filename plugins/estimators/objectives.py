"""Training rules for critics: nn.Modules implementing harness.training.Objective.

`forward(scores, x, y) -> (loss, value)`: the optimiser minimises `loss`; `value` is the
detached estimate in nats (the f-GAN rule reports D_f). Scores may carry leading dimensions
(many critics trained as one batched model): the loss is summed over them and the value keeps
them. Every rule is built from `plugins.estimators.bounds`; none writes a bound itself.

Besides forward, a rule says which side of the truth its value lies on (`bound`: "lower", "upper" or
"estimate"), may give the pointwise MI its critic learned (`learned_pmi(scores, x, y) -> (..., B)`, after
the constant its bound implies) and may choose checkpoints by something other than its value
(`criterion`, e.g. the density models' held-out log-likelihood).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from harness.errors import UserError
from plugins.estimators import bounds
from plugins.estimators.divergences import Divergence


@runtime_checkable
class Capped(Protocol):
    """An objective whose reported value cannot exceed a known function of the batch size it is valued on."""

    def cap_nats(self, batch: int) -> float | None: ...


def _maximise(objective: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    return -objective.sum(), value.detach()


def _baseline_mlp(dim_y: int, hidden: int) -> nn.Module:
    if dim_y < 1 or hidden < 1:
        raise UserError(f"a baseline network needs dim_y >= 1 and hidden >= 1, got dim_y={dim_y}, hidden={hidden}.")
    return nn.Sequential(nn.Linear(dim_y, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def _row_normalised(scores: Tensor) -> Tensor:
    """S_ii - log mean_{j != i} exp S_ij: the PMI of a critic known up to a function of x (InfoNCE-type)."""
    return scores.diagonal(dim1=-2, dim2=-1) - bounds.log_mean_exp_offdiag_rows(scores)


def _positives(scores: Tensor) -> Tensor:
    return scores.diagonal(dim1=-2, dim2=-1)


class InfoNCE(nn.Module):
    """Maximise InfoNCE and report it (van den Oord et al. 2018); capped at log B."""

    bound = "lower"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _row_normalised(scores)

    def cap_nats(self, batch: int) -> float:
        """The most a batch of `batch` pairs can report: log B."""
        return math.log(batch)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.infonce_bound(scores)
        return _maximise(bound, bound)


class NWJ(nn.Module):
    """Maximise NWJ (MINE-f) and report it (Nguyen, Wainwright & Jordan 2010)."""

    bound = "lower"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _positives(scores) - 1.0  # the optimal NWJ critic is 1 + log r

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.nwj_bound(scores)
        return _maximise(bound, bound)


class MINE(nn.Module):
    """MINE (Belghazi et al. 2018, section 3.2): DV value, gradient with a moving-average denominator.

    m <- (1 - r) m + r mean_offdiag(exp S), the batch mean detached; m starts at the first
    batch's mean and is kept in log space (exp S overflows where log-mean-exp does not).
    loss = -(pos - mean_offdiag(exp S) / m). m moves only in training mode.
    """

    log_moving_average: Tensor
    bound = "lower"  # Donsker-Varadhan's, in expectation; a finite batch's value can overshoot

    def __init__(self, rate: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise UserError(f"MINE's moving-average rate must lie in (0, 1], got {rate}.")
        self.rate = rate
        self.register_buffer("log_moving_average", torch.tensor(math.nan))

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        log_partition = bounds.log_mean_exp_offdiag(scores)
        log_m = self.log_moving_average
        if self.training:
            batch = log_partition.detach()
            updated = torch.logaddexp(log_m + math.log1p(-self.rate), batch + math.log(self.rate))
            # NaN marks "no batch seen yet"; torch.where avoids a host sync on the check.
            log_m = torch.where(torch.isnan(log_m), batch, updated)
            self.log_moving_average = log_m
        surrogate = bounds.positive_mean(scores) - (log_partition - log_m.detach()).exp()
        value = bounds.positive_mean(scores) - log_partition
        return _maximise(surrogate, value)

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _dv_normalised(scores)


def _dv_normalised(scores: Tensor) -> Tensor:
    """S_ii - log mean_offdiag exp S: the PMI of a critic known up to a constant (DV-type)."""
    return _positives(scores) - bounds.log_mean_exp_offdiag(scores).unsqueeze(-1)


class JS(nn.Module):
    """Train with the Deep InfoMax JS objective (Hjelm et al. 2019); report NWJ on S + 1."""

    bound = "lower"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _positives(scores)  # the JS optimum is log r itself

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return _maximise(bounds.js_objective(scores), bounds.js_value(scores))


class SMILE(nn.Module):
    """SMILE (Song & Ermon 2020): JS training, clipped-DV value; tau = inf reports DV."""

    bound = "lower"  # clipped DV: biased by the clipping, read in the papers as a lower estimate

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _dv_normalised(scores)

    def __init__(self, tau: float = 5.0) -> None:
        super().__init__()
        if not tau > 0:
            raise UserError(f"SMILE's clipping threshold tau must be positive (inf for none), got {tau}.")
        self.tau = tau

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return _maximise(bounds.js_objective(scores), bounds.smile_value(scores, self.tau))


class TUBA(nn.Module):
    """TUBA (Poole et al. 2019) with a learned baseline log a(y), a small MLP trained with the critic."""

    bound = "lower"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _positives(scores) - self.log_baseline(y).squeeze(-1)  # the optimum of S - log a(y) is log r

    def __init__(self, dim_y: int, hidden: int = 64) -> None:
        super().__init__()
        self.log_baseline = _baseline_mlp(dim_y, hidden)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        # Transposed so rows index y: each marginal pair (x_i, y_j) meets the baseline of its own y_j.
        bound = bounds.tuba_bound(scores.mT, self.log_baseline(y).squeeze(-1))
        return _maximise(bound, bound)


class Interpolated(nn.Module):
    """Poole et al.'s (2019) interpolated bound I_alpha with a learned baseline b(y)."""

    bound = "lower"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        # The bound normalises over x for each y (its baseline and leave-one-out run down the columns), so its
        # critic is known up to a function of y.
        return _row_normalised(scores.mT)

    def __init__(self, dim_y: int, alpha: float = 0.5, hidden: int = 64) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"the interpolation weight alpha must lie in [0, 1] (0: TUBA, 1: InfoNCE), got {alpha}.")
        self.alpha = alpha
        self.log_baseline = _baseline_mlp(dim_y, hidden)

    def cap_nats(self, batch: int) -> float | None:
        """log(B - 1) at alpha = 1, 1 + log((B - 1) / alpha) between; uncapped at alpha = 0 (TUBA)."""
        if self.alpha == 0.0:
            return None
        return math.log(batch - 1) if self.alpha == 1.0 else 1.0 + math.log((batch - 1) / self.alpha)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.interpolated_bound(scores.mT, self.log_baseline(y).squeeze(-1), self.alpha)
        return _maximise(bound, bound)


class NCE(nn.Module):
    """Noise-contrastive estimation (Gutmann & Hyvarinen 2010): logistic loss, plug-in mean_i S_ii value."""

    bound = "estimate"

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _positives(scores)

    def __init__(self, negatives: float = 1.0) -> None:
        super().__init__()
        if not negatives > 0:
            raise UserError(f"NCE needs a positive number of negatives per positive, got {negatives}.")
        self.negatives = negatives

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        loss = bounds.nce_loss(scores, self.negatives)
        return loss.sum(), bounds.nce_value(scores).detach()


class FGAN(nn.Module):
    """Maximise the f-GAN bound of one f-divergence (Nowozin et al. 2016); the value is D_f, not MI."""

    bound = "lower"

    def __init__(self, divergence: Divergence) -> None:
        super().__init__()
        self.divergence = divergence

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.fgan_bound(scores, self.divergence)
        return _maximise(bound, bound)


class FLO(nn.Module):
    """FLO (Guo et al. 2022): the critic's scores g and u(x, y) on each positive pair, trained with it; a lower
    bound that is not capped at log B.

    u = v(x, y) - g(x, y) with v a small MLP: the optimum u* = log E_y' exp g(x, y') - g(x, y) then asks v for a
    function of x alone (any u keeps the bound). A free u from scratch measured 1.19 nats against 2.36 on the
    20-d staircase at 4 nats (InfoNCE 2.52), 1000 steps."""

    bound = "lower"

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 64) -> None:
        super().__init__()
        self.v = _baseline_mlp(dim_x + dim_y, hidden)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        u = self.v(torch.cat([x, y], dim=-1)).squeeze(-1) - scores.diagonal(dim1=-2, dim2=-1)
        bound = bounds.flo_bound(scores, u)
        return _maximise(bound, bound)

    def learned_pmi(self, scores: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return _row_normalised(scores)  # the FLO critic is known up to a function of x


class _Conditional(nn.Module):
    """A rule on log q(y_j | x_i) (densities.ConditionalCritic): q is fit by maximum likelihood on the positives,
    checkpoints are chosen by the held-out log-likelihood, and the value is the rule's bound on q."""

    def forward(self, log_q: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return -self.criterion(log_q, x, y).sum(), self.value(log_q).detach()

    def criterion(self, log_q: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return bounds.positive_mean(log_q)

    def learned_pmi(self, log_q: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return bounds.l1out_pmi(log_q)


class CLUB(_Conditional):
    """CLUB (Cheng et al. 2020): an upper bound when q = p(y|x)."""

    bound = "upper"
    value = staticmethod(bounds.club_bound)


class CLUBSample(_Conditional):
    """CLUB with one negative per positive (Cheng et al. 2020): the same value in expectation, noisier."""

    bound = "upper"
    value = staticmethod(bounds.club_sample_bound)


class L1Out(_Conditional):
    """L1Out (Poole et al. 2019): leave-one-out ratio of the conditional; an upper bound when q = p(y|x)."""

    bound = "upper"
    value = staticmethod(bounds.l1out_bound)


class BarberAgakov(_Conditional):
    """Barber-Agakov: I >= h(Y) + E log q(y|x), equal at q = p(y|x); h(Y) is given (nats)."""

    bound = "lower"

    def __init__(self, entropy_y: float) -> None:
        super().__init__()
        self.entropy_y = entropy_y

    def value(self, log_q: Tensor) -> Tensor:
        return self.entropy_y + bounds.positive_mean(log_q)


class _Likelihoods(nn.Module):
    """A rule on per-pair log-likelihoods (..., B, F) (densities.LikelihoodCritic): every model is fit by maximum
    likelihood, checkpoints are chosen by their summed held-out log-likelihood, and the pair's PMI is a signed
    sum of its columns (`signs`)."""

    bound = "estimate"
    signs: tuple[float, ...]

    # Each member's numbers are reduced over its own contiguous (B,) row, so a group gives each the bits it
    # gets alone (a reduction across rows, or a matrix-vector product, would not).

    def forward(self, log_q: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return -self.criterion(log_q, x, y).sum(), self.learned_pmi(log_q, x, y).mean(-1).detach()

    def criterion(self, log_q: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return sum(log_q[..., f] for f in range(log_q.shape[-1])).mean(-1)

    def learned_pmi(self, log_q: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return sum(sign * log_q[..., f] for f, sign in enumerate(self.signs))


class DifferenceOfEntropies(_Likelihoods):
    """DoE (McAllester & Stratos 2020): h(Y) - h(Y|X) from cross-entropies of q(y) and q(y|x); not a bound."""

    signs = (1.0, -1.0)  # columns log q(y|x), log q(y)


class GenerativeMI(_Likelihoods):
    """Generative MI: mean log q(x, y) - log q(x) - log q(y) from three density models; not a bound."""

    signs = (1.0, -1.0, -1.0)  # columns log q(x, y), log q(x), log q(y)


__all__ = ["CLUB", "FGAN", "FLO", "JS", "MINE", "NCE", "NWJ", "SMILE", "TUBA", "BarberAgakov", "CLUBSample",
           "Capped", "DifferenceOfEntropies", "GenerativeMI", "InfoNCE", "Interpolated", "L1Out"]


# Bounds valued as NWJ / DV averages of exp(T): their batch variance grows like e^I / B
# (McAllester & Stratos 2020; Song & Ermon 2020), so a training variance above that says noise.
HIGH_VARIANCE = (NWJ, MINE, JS, TUBA)
