"""The f-divergence table of /work/shared/MATH.md (f-GAN, Nowozin et al. 2016, corrected) as data.

D_f(P || Q) = int q f(p/q). For a raw critic V the f-GAN bound is E_P[g(V)] - E_Q[f*(g(V))];
the optimal critic is V* = g^{-1}(f'(p/q)). `f` and `f_prime` are numpy (ground truth by Monte
Carlo or quadrature); `activation`, `conjugate` and `conjugate_of_activation` are torch.
Target strings name a row: "kl", "js", "alpha=0.5".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import xlogy
from torch import Tensor

from harness.errors import UserError, unknown_name
from plugins.estimators.divergence_names import DIVERGENCE_NAMES

ArrayFn = Callable[[np.ndarray], np.ndarray]
TensorFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Interval:
    """A real interval; `low_closed` / `high_closed` say whether an end belongs to it."""

    low: float
    high: float
    low_closed: bool = False
    high_closed: bool = False

    def contains(self, t: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Elementwise membership, as a bool array of the input's kind (numpy or torch)."""
        t = t if isinstance(t, Tensor) else np.asarray(t)
        above = t >= self.low if self.low_closed else t > self.low
        below = t <= self.high if self.high_closed else t < self.high
        return above & below


REAL_LINE = Interval(-math.inf, math.inf)


@dataclass(frozen=True)
class Divergence:
    """One row of the table. `conjugate` is +inf outside `conjugate_domain`.

    `conjugate_of_activation(v) = f*(g(v))` written so that it stays finite wherever the true
    value is representable (the plain composition saturates g at the edge of dom f*).
    """

    name: str
    f: ArrayFn
    f_prime: ArrayFn
    activation: TensorFn
    inverse_activation: ArrayFn
    conjugate: TensorFn
    conjugate_of_activation: TensorFn
    conjugate_domain: Interval
    alpha: float | None = None

    @property
    def target(self) -> str:
        return target_name(self.name, self.alpha)


def _log_softplus(x: Tensor) -> Tensor:
    """log(softplus(x)); for x < -30, softplus(x) = e^x - e^{2x}/2 + ..., so log is x - e^x/2."""
    inner = F.softplus(x.clamp(min=-30.0)).log()
    return torch.where(x < -30.0, x - 0.5 * x.exp(), inner)


def _log_expm1(z: np.ndarray) -> np.ndarray:
    """log(e^z - 1) for z > 0 without overflow: z + log1p(-e^{-z}) once e^z is large."""
    z = np.asarray(z, dtype=float)
    with np.errstate(over="ignore", divide="ignore"):
        return np.where(z > 30.0, z + np.log1p(-np.exp(-z)), np.log(np.expm1(z)))


def _restricted(domain: Interval, safe: float, fn: TensorFn) -> TensorFn:
    """fn inside the domain, +inf outside; evaluates fn only at safe points so gradients stay finite."""

    def conjugate(t: Tensor) -> Tensor:
        inside = domain.contains(t)
        value = fn(torch.where(inside, t, torch.full_like(t, safe)))
        return torch.where(inside, value, torch.full_like(t, math.inf))

    return conjugate


def _wrightomega_value(z: Tensor) -> Tensor:
    # Newton on w + log w = z, in the form w <- w (1 + z - log w) / (1 + w): from either start
    # below every iterate stays positive and converges quadratically (w + log w is concave).
    # Below z = -40, w = e^{z - w} equals e^z to double precision.
    zc = z.clamp(min=-40.0)
    w = torch.where(zc > 1.0, zc - zc.clamp(min=1.0).log(), zc.clamp(max=1.0).exp())
    for _ in range(6):
        w = w * (1.0 + zc - w.log()) / (1.0 + w)
    return torch.where(z < -40.0, z.exp(), w)


class _WrightOmega(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:  # type: ignore[override]
        w = _wrightomega_value(z)
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (w,) = ctx.saved_tensors
        return grad * w / (1.0 + w)


def wrightomega(z: Tensor) -> Tensor:
    """Wright omega on the reals: the w > 0 with w + log w = z, i.e. W(e^z) without overflow."""
    return _WrightOmega.apply(z)


def _jeffrey_conjugate(t: Tensor) -> Tensor:
    # W + 1/W + t - 2 with W = W(e^{1-t}); since W + log W = 1 - t, 1/W = exp(W + t - 1), whose
    # autograd path stays finite where d(1/W) = -dW / W^2 would underflow W^2.
    w = wrightomega(1.0 - t)
    return w + (w + t - 1.0).exp() + t - 2.0


def _tv() -> Divergence:
    domain = Interval(-0.5, 0.5, True, True)
    return Divergence(
        name="tv",
        f=lambda u: 0.5 * np.abs(u - 1.0),
        f_prime=lambda u: 0.5 * np.sign(u - 1.0),
        activation=lambda v: 0.5 * torch.tanh(v),
        inverse_activation=lambda t: np.arctanh(2.0 * np.asarray(t)),
        conjugate=_restricted(domain, 0.0, lambda t: t),
        conjugate_of_activation=lambda v: 0.5 * torch.tanh(v),
        conjugate_domain=domain,
    )


def _kl() -> Divergence:
    return Divergence(
        name="kl",
        f=lambda u: xlogy(u, u),
        f_prime=lambda u: np.log(u) + 1.0,
        activation=lambda v: v,
        inverse_activation=lambda t: np.asarray(t),
        conjugate=lambda t: (t - 1.0).exp(),
        conjugate_of_activation=lambda v: (v - 1.0).exp(),
        conjugate_domain=REAL_LINE,
    )


def _reverse_kl() -> Divergence:
    domain = Interval(-math.inf, 0.0)
    return Divergence(
        name="reverse_kl",
        f=lambda u: -np.log(u),
        f_prime=lambda u: -1.0 / u,
        activation=lambda v: -v.exp(),
        inverse_activation=lambda t: np.log(-np.asarray(t)),
        conjugate=_restricted(domain, -1.0, lambda t: -1.0 - (-t).log()),
        conjugate_of_activation=lambda v: -1.0 - v,
        conjugate_domain=domain,
    )


def _pearson() -> Divergence:
    # t^2/4 + t is the conjugate of (u-1)^2 over all real u; over u >= 0 the exact one is -1
    # for t < -2. The larger value keeps the bound valid, only looser there (MATH.md).
    return Divergence(
        name="pearson",
        f=lambda u: (u - 1.0) ** 2,
        f_prime=lambda u: 2.0 * (u - 1.0),
        activation=lambda v: v,
        inverse_activation=lambda t: np.asarray(t),
        conjugate=lambda t: 0.25 * t**2 + t,
        conjugate_of_activation=lambda v: 0.25 * v**2 + v,
        conjugate_domain=REAL_LINE,
    )


def _neyman() -> Divergence:
    domain = Interval(-math.inf, 1.0)
    return Divergence(
        name="neyman",
        f=lambda u: (1.0 - u) ** 2 / u,
        f_prime=lambda u: 1.0 - u**-2.0,
        activation=lambda v: 1.0 - v.exp(),
        inverse_activation=lambda t: np.log1p(-np.asarray(t)),
        conjugate=_restricted(domain, 0.0, lambda t: 2.0 - 2.0 * (1.0 - t).sqrt()),
        conjugate_of_activation=lambda v: 2.0 - 2.0 * (0.5 * v).exp(),
        conjugate_domain=domain,
    )


def _hellinger() -> Divergence:
    domain = Interval(-math.inf, 1.0)
    return Divergence(
        name="hellinger",
        f=lambda u: (np.sqrt(u) - 1.0) ** 2,
        f_prime=lambda u: 1.0 - u**-0.5,
        activation=lambda v: 1.0 - v.exp(),
        inverse_activation=lambda t: np.log1p(-np.asarray(t)),
        conjugate=_restricted(domain, 0.0, lambda t: t / (1.0 - t)),
        conjugate_of_activation=lambda v: torch.expm1(-v),
        conjugate_domain=domain,
    )


def _jeffrey() -> Divergence:
    return Divergence(
        name="jeffrey",
        f=lambda u: (u - 1.0) * np.log(u),
        f_prime=lambda u: np.log(u) + 1.0 - 1.0 / u,
        activation=lambda v: v,
        inverse_activation=lambda t: np.asarray(t),
        conjugate=_jeffrey_conjugate,
        conjugate_of_activation=_jeffrey_conjugate,
        conjugate_domain=REAL_LINE,
    )


def _js() -> Divergence:
    # Half of Nowozin's JS, so D_f is the usual JS <= log 2. f*(g(v)) = softplus(v)/2 - log(2)/2.
    half_log2 = 0.5 * math.log(2.0)
    domain = Interval(-math.inf, half_log2)
    return Divergence(
        name="js",
        f=lambda u: -0.5 * xlogy(u + 1.0, (u + 1.0) / 2.0) + 0.5 * xlogy(u, u),
        f_prime=lambda u: 0.5 * np.log(2.0 * u / (1.0 + u)),
        activation=lambda v: half_log2 - 0.5 * F.softplus(-v),
        inverse_activation=lambda t: -_log_expm1(math.log(2.0) - 2.0 * np.asarray(t)),
        conjugate=_restricted(domain, 0.0, lambda t: -0.5 * (2.0 - (2.0 * t).exp()).log()),
        conjugate_of_activation=lambda v: 0.5 * F.softplus(v) - half_log2,
        conjugate_domain=domain,
    )


def _gan_js() -> Divergence:
    # The GAN / Deep InfoMax row: D_f = 2 JS - log 4 (f(1) = -log 4); f*(g(v)) = softplus(v).
    domain = Interval(-math.inf, 0.0)
    return Divergence(
        name="gan_js",
        f=lambda u: xlogy(u, u) - xlogy(u + 1.0, u + 1.0),
        f_prime=lambda u: np.log(u / (u + 1.0)),
        activation=lambda v: -F.softplus(-v),
        inverse_activation=lambda t: -_log_expm1(-np.asarray(t)),
        conjugate=_restricted(domain, -1.0, lambda t: -torch.log1p(-t.exp())),
        conjugate_of_activation=F.softplus,
        conjugate_domain=domain,
    )


def _alpha(alpha: float) -> Divergence:
    a = float(alpha)
    scale = 1.0 / (a * (a - 1.0))
    power = a / (a - 1.0)
    edge = 1.0 / (1.0 - a)

    def f(u: np.ndarray) -> np.ndarray:
        return scale * (np.power(u, a) - 1.0 - a * (u - 1.0))

    def f_prime(u: np.ndarray) -> np.ndarray:
        return (np.power(u, a - 1.0) - 1.0) / (a - 1.0)

    if a < 1.0:
        # g(v) = 1/(1-a) - softplus(-v), so t(a-1) + 1 = (1-a) softplus(-v) > 0.
        domain = Interval(-math.inf, edge)
        return Divergence(
            name="alpha", alpha=a, f=f, f_prime=f_prime,
            activation=lambda v: edge - F.softplus(-v),
            inverse_activation=lambda t: -_log_expm1(edge - np.asarray(t)),
            conjugate=_restricted(domain, 0.0, lambda t: (t * (a - 1.0) + 1.0) ** power / a - 1.0 / a),
            conjugate_of_activation=lambda v: (power * (math.log(1.0 - a) + _log_softplus(-v))).exp() / a - 1.0 / a,
            conjugate_domain=domain,
        )
    # a > 1: g(v) = v would leave dom f* = R but make f* NaN below 1/(1-a); softplus keeps
    # t(a-1) + 1 = (a-1) softplus(v) >= 0, and the clamp gives the exact conjugate (sup at u = 0).
    return Divergence(
        name="alpha", alpha=a, f=f, f_prime=f_prime,
        activation=lambda v: edge + F.softplus(v),
        inverse_activation=lambda t: _log_expm1(np.asarray(t) - edge),
        conjugate=lambda t: (t * (a - 1.0) + 1.0).clamp(min=0.0) ** power / a - 1.0 / a,
        conjugate_of_activation=lambda v: (power * (math.log(a - 1.0) + _log_softplus(v))).exp() / a - 1.0 / a,
        conjugate_domain=REAL_LINE,
    )


_FIXED = {
    "tv": _tv, "kl": _kl, "reverse_kl": _reverse_kl, "pearson": _pearson, "neyman": _neyman,
    "hellinger": _hellinger, "jeffrey": _jeffrey, "js": _js, "gan_js": _gan_js,
}


def divergence(name: str, alpha: float | None = None) -> Divergence:
    """The row `name` of the table; "alpha" needs `alpha` (any real number but 0 and 1)."""
    if name == "alpha":
        if alpha is None or not math.isfinite(alpha) or alpha in (0.0, 1.0):
            raise UserError(
                f"the alpha-divergence needs a finite alpha other than 0 and 1 (those are the KL limits), "
                f"got alpha={alpha!r}; write e.g. 'alpha=0.5' or use 'kl' / 'reverse_kl'."
            )
        return _alpha(alpha)
    if name not in _FIXED:
        raise unknown_name("divergence", name, list(DIVERGENCE_NAMES))
    if alpha is not None:
        raise UserError(f"divergence {name!r} takes no alpha (got alpha={alpha!r}); only 'alpha' does.")
    return _FIXED[name]()


def target_name(name: str, alpha: float | None = None) -> str:
    """The target string of a row: "kl", or "alpha=0.5" for the alpha-divergence."""
    return f"alpha={float(alpha):g}" if name == "alpha" and alpha is not None else name


def parse_target(target: str) -> Divergence:
    """Inverse of `target_name`: "kl" -> the KL row, "alpha=0.5" -> the alpha-divergence with alpha 0.5."""
    name, sep, value = target.strip().partition("=")
    name = name.strip()
    if not sep:
        return divergence(name)
    if name != "alpha":
        raise UserError(f"target {target!r}: only 'alpha' takes a value ('alpha=0.5'); valid names: "
                        f"{', '.join(DIVERGENCE_NAMES)}.")
    try:
        alpha = float(value)
    except ValueError:
        raise UserError(f"target {target!r}: alpha must be a number, as in 'alpha=0.5'.") from None
    return divergence("alpha", alpha)


__all__ = [
    "DIVERGENCE_NAMES", "Divergence", "Interval", "divergence", "parse_target", "target_name", "wrightomega",
]
