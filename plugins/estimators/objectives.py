"""Training rules for critics: nn.Modules implementing harness.training.Objective.

`forward(scores, x, y) -> (loss, value)`: the optimiser minimises `loss`; `value` is the
detached estimate in nats (the f-GAN rule reports D_f). Scores may carry leading dimensions
(many critics trained as one batched model): the loss is summed over them and the value keeps
them. Every rule is built from `plugins.estimators.bounds`; none writes a bound itself.
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


class InfoNCE(nn.Module):
    """Maximise InfoNCE and report it (van den Oord et al. 2018); capped at log B."""

    def cap_nats(self, batch: int) -> float:
        """The most a batch of `batch` pairs can report: log B."""
        return math.log(batch)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.infonce_bound(scores)
        return _maximise(bound, bound)


class NWJ(nn.Module):
    """Maximise NWJ (MINE-f) and report it (Nguyen, Wainwright & Jordan 2010)."""

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


class JS(nn.Module):
    """Train with the Deep InfoMax JS objective (Hjelm et al. 2019); report NWJ on S + 1."""

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return _maximise(bounds.js_objective(scores), bounds.js_value(scores))


class SMILE(nn.Module):
    """SMILE (Song & Ermon 2020): JS training, clipped-DV value; tau = inf reports DV."""

    def __init__(self, tau: float = 5.0) -> None:
        super().__init__()
        if not tau > 0:
            raise UserError(f"SMILE's clipping threshold tau must be positive (inf for none), got {tau}.")
        self.tau = tau

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return _maximise(bounds.js_objective(scores), bounds.smile_value(scores, self.tau))


class TUBA(nn.Module):
    """TUBA (Poole et al. 2019) with a learned baseline log a(y), a small MLP trained with the critic."""

    def __init__(self, dim_y: int, hidden: int = 64) -> None:
        super().__init__()
        self.log_baseline = _baseline_mlp(dim_y, hidden)

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        # Transposed so rows index y: each marginal pair (x_i, y_j) meets the baseline of its own y_j.
        bound = bounds.tuba_bound(scores.mT, self.log_baseline(y).squeeze(-1))
        return _maximise(bound, bound)


class Interpolated(nn.Module):
    """Poole et al.'s (2019) interpolated bound I_alpha with a learned baseline b(y)."""

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

    def __init__(self, divergence: Divergence) -> None:
        super().__init__()
        self.divergence = divergence

    def forward(self, scores: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        bound = bounds.fgan_bound(scores, self.divergence)
        return _maximise(bound, bound)


__all__ = ["FGAN", "Capped", "JS", "MINE", "NCE", "NWJ", "SMILE", "TUBA", "InfoNCE", "Interpolated"]


# Bounds valued as NWJ / DV averages of exp(T): their batch variance grows like e^I / B
# (McAllester & Stratos 2020; Song & Ermon 2020), so a training variance above that says noise.
HIGH_VARIANCE = (NWJ, MINE, JS, TUBA)
