"""Invertible maps applied to one side of a task; I(f(X); g(Y)) = I(X; Y) for injective f, g.

Each map acts on an (n, d) array and has an exact (or bisection-exact) inverse on its range,
so a transformed task's log density ratio is the base ratio at the inverted point.
Definitions follow Czyz et al. 2023, "Beyond Normal" (arXiv:2306.11078), section 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from plugins.tasks.base import check


class Diffeomorphism:
    name: str = ""

    def out_dim(self, dim: int) -> int:
        return dim

    def forward(self, v: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inverse(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class HalfCube(Diffeomorphism):
    name = "half_cube"

    def forward(self, v: np.ndarray) -> np.ndarray:
        return v * np.sqrt(np.abs(v))

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return np.sign(w) * np.abs(w) ** (2.0 / 3.0)


class Cube(Diffeomorphism):
    name = "cube"

    def forward(self, v: np.ndarray) -> np.ndarray:
        return v**3

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return np.cbrt(w)


class Asinh(Diffeomorphism):
    name = "asinh"

    def forward(self, v: np.ndarray) -> np.ndarray:
        return np.arcsinh(v)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return np.sinh(w)


class NormalCDF(Diffeomorphism):
    """Phi maps R onto (0, 1); in float64 it saturates beyond |v| ~ 8, so use it on light tails."""

    name = "normal_cdf"

    def forward(self, v: np.ndarray) -> np.ndarray:
        return special.ndtr(v)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return special.ndtri(w)


@dataclass
class Wiggly(Diffeomorphism):
    """v + sum_k a_k sin(w_k v + c_k) with sum |a_k w_k| < 1, hence strictly increasing."""

    amplitudes: tuple[float, ...]
    frequencies: tuple[float, ...]
    phases: tuple[float, ...]
    name: str = "wiggly"

    def forward(self, v: np.ndarray) -> np.ndarray:
        out = np.array(v, dtype=np.float64, copy=True)
        for a, w, c in zip(self.amplitudes, self.frequencies, self.phases, strict=True):
            out += a * np.sin(w * v + c)
        return out

    def derivative(self, v: np.ndarray) -> np.ndarray:
        out = np.ones_like(v, dtype=np.float64)
        for a, w, c in zip(self.amplitudes, self.frequencies, self.phases, strict=True):
            out += a * w * np.cos(w * v + c)
        return out

    def inverse(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, dtype=np.float64)
        reach = sum(abs(a) for a in self.amplitudes) + 1e-9
        return _solve_increasing(lambda z: self.forward(z) - w, self.derivative, w - reach, w + reach)


# Beyond Normal uses one wiggly map for X and another for Y.
WIGGLY_X = Wiggly((0.4, 0.2, 0.03), (1.0, 1.7, 3.3), (0.0, 1.0, -2.5))
WIGGLY_Y = Wiggly((-0.4, 0.17, 0.02), (0.4, 1.3, 4.3), (0.0, 3.5, -2.5))


@dataclass
class Spiral(Diffeomorphism):
    """Rotate the plane of coordinates `plane` = (i, j) (default the first two) by speed * ||v||^2
    (norm-preserving): v_i <- cos a v_i - sin a v_j, v_j <- sin a v_i + cos a v_j."""

    speed: float = 0.5
    name: str = "spiral"
    plane: tuple[int, int] = (0, 1)

    def out_dim(self, dim: int) -> int:
        need = max(self.plane) + 1
        check(dim >= need, f"spiral needs at least {need} dimensions on the side it is applied to, got {dim}.")
        return dim

    def _rotate(self, v: np.ndarray, sign: float) -> np.ndarray:
        (i, j) = self.plane
        angle = sign * self.speed * np.sum(v**2, axis=1)
        out = np.array(v, dtype=np.float64, copy=True)
        cos, sin = np.cos(angle), np.sin(angle)
        out[:, i] = cos * v[:, i] - sin * v[:, j]
        out[:, j] = sin * v[:, i] + cos * v[:, j]
        return out

    def forward(self, v: np.ndarray) -> np.ndarray:
        return self._rotate(v, 1.0)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return self._rotate(w, -1.0)


class SwissRoll(Diffeomorphism):
    """Roll the first coordinate: u = Phi(v_0), t = 1.5 pi (1 + 2u) -> (t cos t, t sin t);
    the other coordinates pass through, so 2-D inputs become the classic 3-D swiss roll.
    t > 0 is the distance to the axis, which makes the embedding injective."""

    name = "swissroll"

    def out_dim(self, dim: int) -> int:
        return dim + 1

    def forward(self, v: np.ndarray) -> np.ndarray:
        t = 1.5 * np.pi * (1.0 + 2.0 * special.ndtr(v[:, :1]))
        return np.concatenate([t * np.cos(t), t * np.sin(t), v[:, 1:]], axis=1)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        t = np.hypot(w[:, :1], w[:, 1:2])
        return np.concatenate([special.ndtri((t / (1.5 * np.pi) - 1.0) / 2.0), w[:, 2:]], axis=1)


@dataclass
class Bimodal(Diffeomorphism):
    """v -> F^-1(Phi(v)) with F the CDF of a two-component unit-variance Gaussian mixture.

    Both directions work in log space (log Phi on the lower half, log survival on the
    upper) so the tails keep their precision; F^-1 is found by safeguarded Newton."""

    weights: tuple[float, float]
    means: tuple[float, float]
    name: str = "bimodal"

    def _log_cdf(self, z: np.ndarray) -> np.ndarray:
        (w0, w1), (m0, m1) = np.log(self.weights), self.means
        return np.logaddexp(w0 + special.log_ndtr(z - m0), w1 + special.log_ndtr(z - m1))

    def _log_sf(self, z: np.ndarray) -> np.ndarray:
        (w0, w1), (m0, m1) = np.log(self.weights), self.means
        return np.logaddexp(w0 + special.log_ndtr(m0 - z), w1 + special.log_ndtr(m1 - z))

    def forward(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        out = np.empty_like(v)
        lower = v <= 0
        low, high = min(self.means) - 10.0, max(self.means) + 10.0
        vl, vu = v[lower], v[~lower]
        # solve log F(z) = log Phi(v) on the lower half, log S(z) = log Phi(-v) on the upper;
        # both residuals below increase in z, with derivatives p/F and p/S
        tl, tu = special.log_ndtr(vl), special.log_ndtr(-vu)
        out[lower] = _solve_increasing(lambda z: self._log_cdf(z) - tl,
                                       lambda z: np.exp(self._log_pdf(z) - self._log_cdf(z)),
                                       low - np.abs(vl), high + np.abs(vl))
        out[~lower] = _solve_increasing(lambda z: tu - self._log_sf(z),
                                        lambda z: np.exp(self._log_pdf(z) - self._log_sf(z)),
                                        low - np.abs(vu), high + np.abs(vu))
        return out

    def _log_pdf(self, z: np.ndarray) -> np.ndarray:
        (w0, w1), (m0, m1) = np.log(self.weights), self.means
        return np.logaddexp(w0 - 0.5 * (z - m0) ** 2, w1 - 0.5 * (z - m1) ** 2) - 0.5 * np.log(2 * np.pi)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        log_cdf, log_sf = self._log_cdf(w), self._log_sf(w)
        return np.where(log_cdf < log_sf, special.ndtri_exp(log_cdf), -special.ndtri_exp(np.minimum(log_sf, 0.0)))


@dataclass
class Power(Diffeomorphism):
    """v -> sign(v) |v|^alpha on each coordinate (alpha > 0): Beyond Normal's tail-lengthening map
    (alpha = 1.5 is half_cube, 3 is cube)."""

    alpha: float = 2.0
    name: str = "power"

    def forward(self, v: np.ndarray) -> np.ndarray:
        return np.sign(v) * np.abs(v) ** self.alpha

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return np.sign(w) * np.abs(w) ** (1.0 / self.alpha)


@dataclass
class Orthogonal(Diffeomorphism):
    """Row vectors times a fixed orthogonal matrix, v -> v @ M, undone by w @ M^T."""

    matrix: np.ndarray
    name: str = "orthogonal"

    def out_dim(self, dim: int) -> int:
        check(dim == len(self.matrix), f"{self.name} acts on {len(self.matrix)} dimensions, got {dim}.")
        return dim

    def forward(self, v: np.ndarray) -> np.ndarray:
        return v @ self.matrix

    def inverse(self, w: np.ndarray) -> np.ndarray:
        return w @ self.matrix.T


@dataclass
class Waves(Diffeomorphism):
    """The Waves task's map on 2-D X (Czyz et al. 2023, mixtures paper): shear the first coordinate by
    amplitude * sin(frequency * v_1), then v -> (0.1 v_0 - 0.8, 0.5 v_1). Triangular with unit shear
    Jacobian, so injective, with the closed-form inverse below."""

    amplitude: float = 5.0
    frequency: float = 3.0
    name: str = "waves"

    def out_dim(self, dim: int) -> int:
        check(dim == 2, f"the waves map acts on 2-D X, got {dim} dimensions.")
        return dim

    def forward(self, v: np.ndarray) -> np.ndarray:
        sheared = v[:, 0] + self.amplitude * np.sin(self.frequency * v[:, 1])
        return np.stack([0.1 * sheared - 0.8, 0.5 * v[:, 1]], axis=1)

    def inverse(self, w: np.ndarray) -> np.ndarray:
        v1 = w[:, 1] / 0.5
        return np.stack([(w[:, 0] + 0.8) / 0.1 - self.amplitude * np.sin(self.frequency * v1), v1], axis=1)


# Beyond Normal's bimodal marginals: 0.3 N(0,1) + 0.7 N(5,1) for X, 0.5 N(-1,1) + 0.5 N(3,1) for Y.
BIMODAL_X = Bimodal((0.3, 0.7), (0.0, 5.0))
BIMODAL_Y = Bimodal((0.5, 0.5), (-1.0, 3.0))


def _solve_increasing(residual, derivative, lo: np.ndarray, hi: np.ndarray, steps: int = 60) -> np.ndarray:
    """Root of an increasing elementwise function inside [lo, hi]: Newton steps, falling back to
    bisection whenever Newton leaves the shrinking bracket (so it always converges)."""
    lo, hi = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
    z = 0.5 * (lo + hi)
    for _ in range(steps):
        r = residual(z)
        lo, hi = np.where(r < 0, z, lo), np.where(r < 0, hi, z)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = z - r / derivative(z)
        inside = (newton >= lo) & (newton <= hi)
        step = np.where(inside, newton, 0.5 * (lo + hi))
        converged = np.all(np.abs(step - z) <= 1e-14 * (1.0 + np.abs(z)))
        z = step
        if converged:
            break
    return z
