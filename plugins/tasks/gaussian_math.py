"""Closed-form f-divergences between two multivariate Gaussians.

Every row except total variation and Jensen-Shannon follows from KL and the Gaussian integral
M(a) = int p^a q^(1-a), finite iff a Sigma_p^-1 + (1-a) Sigma_q^-1 is positive definite:
squared Hellinger 2 - 2 M(1/2), Pearson chi2 M(2) - 1, Neyman chi2 M(-1) - 1,
alpha-divergence (M(a) - 1) / (a (a - 1)). Total variation has one only for equal covariances.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from plugins.tasks.fdiv import Target


def log_affinity(a: float, m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """log int N(z; m1, s1)^a N(z; m2, s2)^(1-a) dz, +inf where the integral diverges."""
    p1, p2 = np.linalg.inv(s1), np.linalg.inv(s2)
    precision = a * p1 + (1 - a) * p2
    if np.any(np.linalg.eigvalsh((precision + precision.T) / 2) <= 0):
        return float("inf")
    b = a * p1 @ m1 + (1 - a) * p2 @ m2
    quadratic = a * m1 @ p1 @ m1 + (1 - a) * m2 @ p2 @ m2 - b @ np.linalg.solve(precision, b)
    logdet = np.linalg.slogdet(precision)[1] + a * np.linalg.slogdet(s1)[1] + (1 - a) * np.linalg.slogdet(s2)[1]
    return float(-0.5 * logdet - 0.5 * quadratic)


def kl(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    """KL(N(m1, s1) || N(m2, s2))."""
    d = len(m1)
    p2 = np.linalg.inv(s2)
    delta = m2 - m1
    logdets = np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1]
    return float(0.5 * (np.trace(p2 @ s1) + delta @ p2 @ delta - d + logdets))


def _affinity_minus_one(a: float, *gaussians: np.ndarray) -> float:
    log_m = log_affinity(a, *gaussians)
    return float("inf") if np.isinf(log_m) else float(np.expm1(log_m))


def f_divergence(target: Target, m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float | None:
    """D_f(N(m1, s1) || N(m2, s2)) in closed form, None where none is known (js, gan_js; tv unless s1 = s2)."""
    gaussians = (m1, s1, m2, s2)
    match target.name:
        case "kl":
            return kl(*gaussians)
        case "reverse_kl":
            return kl(m2, s2, m1, s1)
        case "jeffrey":
            return kl(*gaussians) + kl(m2, s2, m1, s1)
        case "hellinger":
            return -2.0 * _affinity_minus_one(0.5, *gaussians)
        case "pearson":
            return _affinity_minus_one(2.0, *gaussians)
        case "neyman":
            return _affinity_minus_one(-1.0, *gaussians)
        case "tv" if np.array_equal(s1, s2):
            # equal covariances: the densities cross on a hyperplane; TV = 2 Phi(delta / 2) - 1
            delta = np.sqrt((m2 - m1) @ np.linalg.solve(s1, m2 - m1))
            return float(special.erf(delta / (2 * np.sqrt(2))))
        case "alpha" if target.alpha is not None and target.alpha not in (0.0, 1.0):
            a = target.alpha
            return _affinity_minus_one(a, *gaussians) / (a * (a - 1))
    return None
