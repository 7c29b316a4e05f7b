"""MI tasks with a discrete side: a quantised Gaussian, a k-ary symmetric channel, classes and a Gaussian mixture.

Discrete values are coded as floats 0, 1, ..., levels - 1 (one column per coordinate). Every task here knows
its MI exactly and its pointwise MI, and declares its marginal entropies with `entropy(side)`: the discrete
(Shannon) entropy of a discrete side, the differential entropy of a continuous one, in nats.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, special

from plugins.tasks import low_dimensional
from plugins.tasks.base import MITask, checked_side
from plugins.tasks.fdiv import Target
from plugins.tasks.params import DiscreteContinuousParams, NoisyChannelParams, QuantizedGaussianParams


def discrete_entropy(probabilities: np.ndarray) -> float:
    return float(np.sum(special.entr(probabilities)))


def table_mi(joint: np.ndarray) -> float:
    """I = sum p(i, j) log p(i, j) / (p(i) p(j)) of a joint probability table (zero cells add nothing)."""
    product = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    return float(np.sum(special.xlogy(joint, joint) - special.xlogy(joint, product)))


def table_pmi(joint: np.ndarray) -> np.ndarray:
    """log p(i, j) / (p(i) p(j)) per cell; -inf where p(i, j) is 0."""
    product = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(joint) - np.log(product)


def table_f_information(joint: np.ndarray, divergence: Target) -> float:
    """D_f(P_XY || P_X P_Y) = sum p(i) p(j) f(p(i, j) / (p(i) p(j))), exact for a finite table."""
    product = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    return float(np.sum(product * divergence.f_of_log_ratio(table_pmi(joint))))


def _interval_mass(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Phi(upper) - Phi(lower), from the tail nearer the interval so small masses keep their digits."""
    return np.where(lower > 0, special.ndtr(-lower) - special.ndtr(-upper), special.ndtr(upper) - special.ndtr(lower))


def quantized_normal_table(correlation: float, inner_edges: np.ndarray) -> np.ndarray:
    """P(X in cell i, Y in cell j) for a standard bivariate normal with this correlation, cells cut at inner_edges.

    Each x cell is one adaptive 1-D integral of the conditional law, for all y cells at once:
    P_ij = int_{a_i}^{a_i+1} phi(x) [Phi((b_j+1 - rho x)/s) - Phi((b_j - rho x)/s)] dx, s = sqrt(1 - rho^2).
    """
    edges = np.concatenate([[-np.inf], inner_edges, [np.inf]])
    rho, s = correlation, np.sqrt(1.0 - correlation**2)

    def conditional_cells(x: float) -> np.ndarray:
        standardised = (edges - rho * x) / s
        return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi) * _interval_mass(standardised[:-1], standardised[1:])

    rows = [integrate.quad_vec(conditional_cells, low, high, epsabs=1e-15, epsrel=1e-12)[0]
            for low, high in zip(edges[:-1], edges[1:], strict=True)]
    return np.array(rows)


class QuantizedGaussianTask(MITask):
    """`dim` independent pairs (X_i, Y_i), each a standard bivariate normal with correlation rho, every
    coordinate quantised into `bins` equal-width cells over [-span, span] (the two end cells reach to +-inf)
    and coded by its cell index.

    I = dim * I(one quantised pair), summed exactly over the table of cell probabilities, each computed by the
    1-D conditional integral (quantized_normal_table); by data processing it is below the Gaussian's
    -(dim/2) log(1 - rho^2) and approaches it as the cells shrink.
    """

    discrete_sides = ("x", "y")

    def __init__(self, params: QuantizedGaussianParams) -> None:
        super().__init__("quantized_gaussian", params)
        self.dim_x = self.dim_y = params.dim
        self.correlation = params.correlation
        self.inner_edges = np.linspace(-params.span, params.span, params.bins + 1)[1:-1]
        self.cells = quantized_normal_table(self.correlation, self.inner_edges)
        self._pmi = table_pmi(self.cells)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.dim_x))
        y = self.correlation * x + np.sqrt(1.0 - self.correlation**2) * rng.standard_normal((n, self.dim_y))
        return self._quantised(x), self._quantised(y)

    def _quantised(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.inner_edges, values, side="right").astype(np.float64)

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        last = len(self.inner_edges)
        i = np.clip(np.rint(x).astype(int), 0, last)
        j = np.clip(np.rint(y).astype(int), 0, last)
        return self._pmi[i, j].sum(axis=1)

    def exact_mi(self) -> float:
        return self.dim_x * table_mi(self.cells)

    def closed_form(self, divergence: Target) -> float | None:
        # Only the KL of independent pairs adds up; other f's of a product table would need bins^(2 dim) cells.
        return table_f_information(self.cells, divergence) if self.dim_x == 1 else None

    def entropy(self, side: str) -> float:
        """H(X) or H(Y) in nats, the discrete entropy of the quantised marginal (both sides are alike)."""
        checked_side(side)
        return self.dim_x * discrete_entropy(self.cells.sum(axis=1))


class NoisyChannelTask(MITask):
    """The k-ary symmetric channel: X uniform on k symbols, Y = X with probability 1 - eps, otherwise uniform
    on the other k - 1 symbols. I = log k - h(eps) - eps log(k - 1) exactly (h the binary entropy)."""

    discrete_sides = ("x", "y")

    dim_x = dim_y = 1

    def __init__(self, params: NoisyChannelParams) -> None:
        super().__init__("noisy_channel", params)
        self.symbols = params.symbols
        self.flip_probability = params.flip_probability

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.integers(0, self.symbols, size=(n, 1))
        flipped = rng.random((n, 1)) < self.flip_probability
        other = (x + rng.integers(1, self.symbols, size=(n, 1))) % self.symbols
        return x.astype(np.float64), np.where(flipped, other, x).astype(np.float64)

    def _log_ratios(self) -> tuple[float, float]:
        """log p(y | x) / p(y) where y = x, and where y != x (p(y) = 1/k: Y is uniform too)."""
        k, eps = self.symbols, self.flip_probability
        with np.errstate(divide="ignore"):
            return float(np.log(k) + np.log1p(-eps)), float(np.log(k) + np.log(eps) - np.log(k - 1))

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        kept, flipped = self._log_ratios()
        return np.where(np.rint(x[:, 0]) == np.rint(y[:, 0]), kept, flipped)

    def exact_mi(self) -> float:
        eps = self.flip_probability
        binary_entropy = special.entr(eps) + special.entr(1.0 - eps)
        return float(np.log(self.symbols) - binary_entropy - special.xlogy(eps, self.symbols - 1))

    def closed_form(self, divergence: Target) -> float:
        # Under P_X P_Y the diagonal y = x has mass 1/k; the joint puts 1 - eps there.
        kept, flipped = divergence.f_of_log_ratio(np.array(self._log_ratios()))
        k = self.symbols
        return float(kept / k + flipped * (k - 1) / k)

    def entropy(self, side: str) -> float:
        """H(X) = H(Y) = log k nats: X is uniform, and so is Y by symmetry."""
        checked_side(side)
        return float(np.log(self.symbols))


class DiscreteContinuousTask(low_dimensional.DiscreteContinuousTask):
    """low_dimensional's task (X uniform on k classes, Y | X ~ N(spacing X, sigma^2)) with its marginal
    entropies: H(X) = log k (discrete) and h(Y), the differential entropy of the Gaussian mixture, by
    adaptive 1-D quadrature. With h(Y | X) = 1/2 log(2 pi e sigma^2), h(Y) - h(Y | X) is a second route to
    the MI that exact_mi integrates directly."""

    discrete_sides = ("x",)

    def entropy(self, side: str) -> float:
        """H(X) = log k nats (discrete); h(Y) = -int p(y) log p(y) dy nats (differential)."""
        if checked_side(side) == "x":
            return float(np.log(len(self.means)))

        def integrand(y: float) -> float:
            log_p = float(self._log_marginal(np.array(y)))
            return -np.exp(log_p) * log_p

        return self.integral_over_y(integrand)


def build_quantized_gaussian(params: QuantizedGaussianParams) -> QuantizedGaussianTask:
    return QuantizedGaussianTask(params)


def build_noisy_channel(params: NoisyChannelParams) -> NoisyChannelTask:
    return NoisyChannelTask(params)


def build_discrete_continuous(params: DiscreteContinuousParams) -> DiscreteContinuousTask:
    return DiscreteContinuousTask(params)
