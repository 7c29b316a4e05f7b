"""Gaussian mixtures with Monte-Carlo ground truth ("fine distributions", Czyz et al. 2023).

The joint is a mixture of Gaussians, so are both marginals, so the pointwise MI is known
everywhere and I = E[log r] by Monte Carlo (>= 1e5 samples, standard error stored).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from harness.api import NoParams, Params
from plugins.tasks import diffeomorphisms as d
from plugins.tasks.base import MITask
from plugins.tasks.params import ConcentricParams, GalaxyParams, InliersParams, WavesParams, XParams
from plugins.tasks.transforms import TransformTask


class _Mixture:
    def __init__(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
        self.log_weights = np.log(np.asarray(weights, dtype=np.float64))
        self.means = np.asarray(means, dtype=np.float64)
        self.precisions = np.linalg.inv(covariances)
        self.log_norms = -0.5 * (np.linalg.slogdet(covariances)[1] + self.means.shape[1] * np.log(2 * np.pi))

    def log_density(self, z: np.ndarray) -> np.ndarray:
        centred = z[:, None, :] - self.means[None]
        quadratic = np.einsum("nki,kij,nkj->nk", centred, self.precisions, centred)
        return special.logsumexp(self.log_weights + self.log_norms - 0.5 * quadratic, axis=1)


class GaussianMixtureTask(MITask):
    """(X, Y) ~ sum_k w_k N(m_k, S_k); X is the first dim_x coordinates."""

    def __init__(self, name: str, params: Params, weights, means, covariances, dim_x: int) -> None:
        super().__init__(name, params)
        keep = np.asarray(weights, dtype=np.float64) > 0
        self.weights = np.asarray(weights, dtype=np.float64)[keep] / np.sum(weights)
        self.means = np.asarray(means, dtype=np.float64)[keep]
        self.covariances = np.asarray(covariances, dtype=np.float64)[keep]
        self.dim_x, self.dim_y = dim_x, self.means.shape[1] - dim_x
        self._choleskies = np.linalg.cholesky(self.covariances)
        sx, sy = slice(0, dim_x), slice(dim_x, None)
        self._joint = _Mixture(self.weights, self.means, self.covariances)
        self._x = _Mixture(self.weights, self.means[:, sx], self.covariances[:, sx, sx])
        self._y = _Mixture(self.weights, self.means[:, sy], self.covariances[:, sy, sy])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        components = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.means.shape[1]))
        z = self.means[components] + np.einsum("nij,nj->ni", self._choleskies[components], noise)
        return z[:, : self.dim_x], z[:, self.dim_x :]

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._joint.log_density(np.concatenate([x, y], axis=1)) - self._x.log_density(x) - self._y.log_density(y)


def build_x(params: XParams) -> GaussianMixtureTask:
    """Two 1x1 Gaussians with correlations +rho and -rho, overlaid as an X."""
    covariances = [[[1.0, s * params.correlation], [s * params.correlation, 1.0]] for s in (-1, 1)]
    return GaussianMixtureTask("mixture_x", params, [0.5, 0.5], np.zeros((2, 2)), covariances, dim_x=1)


def build_ai(params: NoParams) -> GaussianMixtureTask:
    """Six 1x1 components drawing the letters A and I (Czyz et al. 2023, fig. 1)."""
    var_x, corr = 0.04, 0.95
    c = np.sqrt(var_x * 0.2) * corr
    means = [[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [-0.8, -0.2], [-1.2, 0.0], [-0.4, 0.0]]
    covariances = [np.diag([0.01, 0.2]), np.diag([0.05, 0.001]), np.diag([0.05, 0.001]),
                   np.diag([0.03, 0.001]), [[var_x, c], [c, 0.2]], [[var_x, -c], [-c, 0.2]]]
    return GaussianMixtureTask("mixture_ai", params, np.full(6, 1 / 6), means, covariances, dim_x=1)


def build_galaxy(params: GalaxyParams) -> TransformTask:
    """Two unit balls in 2x1 dimensions at +-(distance/2)(1, 1, 1), X then spiralled."""
    means = np.array([[-1.0] * 3, [1.0] * 3]) * params.distance / 2
    balls = GaussianMixtureTask("galaxy", params, [0.5, 0.5], means, np.stack([np.eye(3)] * 2), dim_x=2)
    return TransformTask("galaxy", params, balls, d.Spiral(speed=params.speed), None)


def build_waves(params: WavesParams) -> TransformTask:
    """`components` 2x1 Gaussians, k-th at (1.5 k, 0 | 1.5 (k mod 4)) with variances (0.1, 1 | 0.1),
    X then sheared into waves (d.Waves). X_1 is independent noise, so I(X; Y) = I(X_0; Y)."""
    k = np.arange(params.components, dtype=np.float64)
    means = 1.5 * np.stack([k, np.zeros_like(k), k % 4], axis=1)
    covariances = np.stack([np.diag([0.1, 1.0, 0.1])] * params.components)
    comb = GaussianMixtureTask("waves", params, np.ones(params.components), means, covariances, dim_x=2)
    return TransformTask("waves", params, comb, d.Waves(params.amplitude, params.frequency), None)


def build_concentric(params: ConcentricParams) -> GaussianMixtureTask:
    """Isotropic Gaussians of growing scale i, each tagged by a sharp Y ~ N(i, 1e-4)."""
    scales = np.arange(1, params.components + 1, dtype=np.float64)
    means = [[0.0] * params.dim_x + [i] for i in scales]
    covariances = [np.diag([i**2] * params.dim_x + [1e-4]) for i in scales]
    return GaussianMixtureTask("concentric_gaussians", params, np.ones(len(scales)), means, covariances,
                               dim_x=params.dim_x)


def build_inliers(params: InliersParams) -> GaussianMixtureTask:
    """multinormal_sparse mixed with its own product of marginals: both components share the
    marginals, so the fraction only dilutes the dependence (Czyz et al. 2023, mixtures paper)."""
    from plugins.tasks.gaussian import sparse_correlation

    signal = sparse_correlation(params.dim_x, params.dim_y, params.pairs, params.strength)
    noise = signal.copy()
    noise[: params.dim_x, params.dim_x :] = noise[params.dim_x :, : params.dim_x] = 0.0
    weights = [1 - params.inlier_fraction, params.inlier_fraction]
    return GaussianMixtureTask("multinormal_sparse_inliers", params, weights, np.zeros((2, len(signal))),
                               np.stack([signal, noise]), dim_x=params.dim_x)
