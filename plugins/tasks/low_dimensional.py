"""One-dimensional tasks whose MI is a closed form or a 1-D quadrature."""

from __future__ import annotations

import numpy as np
from scipy import integrate, special

from plugins.tasks.base import MITask
from plugins.tasks.params import AdditiveUniformParams, DiscreteContinuousParams


class AdditiveUniformTask(MITask):
    """X ~ U(0, 1), Y = X + N, N ~ U(-eps, eps) (Beyond Normal's additive noise task)."""

    dim_x = dim_y = 1

    def __init__(self, params: AdditiveUniformParams) -> None:
        super().__init__("additive_uniform", params)
        self.epsilon = params.epsilon

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(0.0, 1.0, size=(n, 1))
        return x, x + rng.uniform(-self.epsilon, self.epsilon, size=(n, 1))

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # p(y | x) = 1/(2 eps) on |y - x| < eps; p(y) = |[0, 1] cap [y - eps, y + eps]| / (2 eps)
        x, y, eps = x[:, 0], y[:, 0], self.epsilon
        overlap = np.minimum(1.0, y + eps) - np.maximum(0.0, y - eps)
        with np.errstate(divide="ignore"):
            return np.where(np.abs(y - x) < eps, -np.log(np.maximum(overlap, 1e-300)), -np.inf)

    def exact_mi(self) -> float:
        eps = self.epsilon
        return 1 / (4 * eps) if eps > 0.5 else eps - np.log(2 * eps)


class DiscreteContinuousTask(MITask):
    """X uniform on k classes (coded 0..k-1 as floats), Y | X ~ N(spacing X, sigma^2).

    I = sum_i (1/k) int N(y; m_i, s) log(N(y; m_i, s) / p(y)) dy, by adaptive 1-D quadrature."""

    dim_x = dim_y = 1

    def __init__(self, params: DiscreteContinuousParams) -> None:
        super().__init__("discrete_continuous", params)
        self.means = params.spacing * np.arange(params.classes)
        self.sigma = params.sigma

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, len(self.means), size=(n, 1))
        return labels.astype(np.float64), self.means[labels] + self.sigma * rng.standard_normal((n, 1))

    def _log_conditional(self, y: np.ndarray, means: np.ndarray) -> np.ndarray:
        return -0.5 * ((y - means) / self.sigma) ** 2 - np.log(self.sigma * np.sqrt(2 * np.pi))

    def _log_marginal(self, y: np.ndarray) -> np.ndarray:
        return special.logsumexp(self._log_conditional(y[..., None], self.means), axis=-1) - np.log(len(self.means))

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        labels = np.clip(np.rint(x[:, 0]).astype(int), 0, len(self.means) - 1)
        return self._log_conditional(y[:, 0], self.means[labels]) - self._log_marginal(y[:, 0])

    def exact_mi(self) -> float:
        def integrand(y: float) -> float:
            log_cond = self._log_conditional(np.float64(y), self.means)
            return float(np.mean(np.exp(log_cond) * (log_cond - self._log_marginal(np.array(y)))))

        return self.integral_over_y(integrand)

    def integral_over_y(self, integrand) -> float:
        """int integrand(y) dy over the classes' means +- 12 sigma, where all but 1e-30 of p(y) lies."""
        reach = 12 * self.sigma
        value, _ = integrate.quad(integrand, self.means[0] - reach, self.means[-1] + reach,
                                  points=list(self.means), limit=500, epsabs=1e-12, epsrel=1e-10)
        return float(value)


def build_additive_uniform(params: AdditiveUniformParams) -> AdditiveUniformTask:
    return AdditiveUniformTask(params)
