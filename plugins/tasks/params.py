"""Every built-in task's parameters, and the transforms' table, in one module free of scipy,
so that registering the tasks (and `mi-harness list`) stays cheap; each task's module imports
its parameters from here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.api import Params

Side = Literal["x", "y", "both"]
# Dimensions a task can be asked for. Some build a dense dim x dim covariance when they are made, so a
# million-dimensional request would try to allocate terabytes before any check; 4096 keeps every
# task's set-up under a few hundred MB and is far above the benchmarks' 25.
MAX_DIM = 4096


def _default_base() -> dict[str, Any]:
    return {"name": "multinormal_sparse", "params": {}}


class GaussianParams(Params):
    dim: int = Field(5, ge=1, le=MAX_DIM, description="dimension of X and of Y")
    mi: float = Field(1.0, ge=0, description="mutual information in nats")


class StaircaseParams(Params):
    mi: float = Field(2.0, ge=0, description="MI level in nats (Poole et al. use 2, 4, 6, 8, 10)")
    dim: int = Field(20, ge=1, le=MAX_DIM, description="dimension of X and of Y")


class DenseParams(Params):
    dim_x: int = Field(2, ge=1, le=MAX_DIM)
    dim_y: int = Field(2, ge=1, le=MAX_DIM)
    correlation: float = Field(0.5, gt=-1, lt=1, description="every off-diagonal correlation")


class SparseParams(Params):
    dim_x: int = Field(5, ge=1, le=MAX_DIM)
    dim_y: int = Field(5, ge=1, le=MAX_DIM)
    pairs: int = Field(2, ge=0, description="interacting pairs (X_i, Y_i)")
    strength: float = Field(2.0, ge=0, description="latent weight; pair correlation s^2 / (1 + s^2)")


class HighMIParams(Params):
    pairs: int = Field(5, ge=1, le=MAX_DIM, description="independent correlated pairs (X_i, Y_i)")
    mi_per_pair: float = Field(4.0, ge=0, description="MI of each pair in nats")


class AdditiveUniformParams(Params):
    epsilon: float = Field(0.1, gt=0, description="noise half-width: Y = X + U(-epsilon, epsilon)")


class DiscreteContinuousParams(Params):
    classes: int = Field(4, ge=1, le=1_000_000, description="X is uniform on {0, ..., classes - 1}")
    spacing: float = Field(1.0, gt=0, description="distance between the class means of Y")
    sigma: float = Field(0.5, gt=0, description="standard deviation of Y given X")


class QuantizedGaussianParams(Params):
    dim: int = Field(1, ge=1, le=MAX_DIM, description="independent quantised pairs (X_i, Y_i): dim of X and of Y")
    correlation: float = Field(0.8, ge=-0.999, le=0.999, description="correlation of each Gaussian pair")
    bins: int = Field(8, ge=2, le=1000, description="levels per coordinate (equal-width cells)")
    span: float = Field(2.0, gt=0, le=40, description="the cells cut [-span, span]; the end cells reach to +-inf")


class NoisyChannelParams(Params):
    symbols: int = Field(4, ge=2, le=1_000_000, description="X is uniform on {0, ..., symbols - 1}")
    flip_probability: float = Field(0.2, ge=0, le=1, description="P(Y != X); Y is then uniform on the other symbols")


class XParams(Params):
    correlation: float = Field(0.9, gt=-1, lt=1, description="correlation of each arm of the X")


class GalaxyParams(Params):
    speed: float = Field(0.5, description="spiral speed applied to the 2-D X")
    distance: float = Field(3.0, description="distance between the two balls along (1, 1, 1)")


class ConcentricParams(Params):
    dim_x: int = Field(3, ge=1, le=MAX_DIM)
    components: int = Field(3, ge=1, le=10_000, description="component i: X ~ N(0, i^2 I), Y ~ N(i, 1e-4)")


class InliersParams(Params):
    dim_x: int = Field(5, ge=1, le=MAX_DIM)
    dim_y: int = Field(5, ge=1, le=MAX_DIM)
    pairs: int = Field(2, ge=0, description="interacting pairs of the signal (as multinormal_sparse)")
    strength: float = Field(2.0, ge=0)
    inlier_fraction: float = Field(0.2, ge=0, le=1, description="share of samples from P_X P_Y (no signal)")


class StudentParams(Params):
    dim_x: int = Field(2, ge=1, le=MAX_DIM)
    dim_y: int = Field(2, ge=1, le=MAX_DIM)
    dof: float = Field(3.0, gt=0, description="degrees of freedom")
    pairs: int = Field(2, ge=0, description="interacting pairs in the dispersion (as multinormal_sparse)")
    strength: float = Field(2.0, ge=0, description="dispersion pair correlation s^2 / (1 + s^2)")


class LVMParams(Params):
    """Beyond Normal's Gaussian latent-variable model (section 4; the sparsity experiments); the task
    uses its correlation matrix. eta=None means eta = strength (equal variances, as multinormal_sparse)."""

    dim_x: int = Field(5, ge=1, le=MAX_DIM)
    dim_y: int = Field(5, ge=1, le=MAX_DIM)
    pairs: int = Field(2, ge=0, description="interacting pairs (X_i, Y_i), each sharing a latent Z_i")
    alpha: float = Field(0.5, ge=0, description="weight of U_all, shared by every variable (dense part)")
    strength: float = Field(2.0, ge=0, description="weight lambda of Z_i in X_i and Y_i, i < pairs")
    beta: float = Field(0.0, ge=0, description="weight of U_X (in every X_i) and of U_Y (in every Y_i)")
    epsilon: float = Field(1.0, gt=0, description="weight of each variable's own noise")
    eta: float | None = Field(None, ge=0, description="extra noise weight of the non-interacting variables; "
                                                      "None = strength")


class StudentDenseParams(Params):
    dim_x: int = Field(2, ge=1, le=MAX_DIM)
    dim_y: int = Field(2, ge=1, le=MAX_DIM)
    dof: float = Field(3.0, gt=0, description="degrees of freedom")
    correlation: float = Field(0.5, gt=-1, lt=1, description="every off-diagonal entry of the dispersion")


class WavesParams(Params):
    components: int = Field(12, ge=1, le=10_000, description="component k: X_0 ~ N(1.5 k, 0.1), Y ~ N(1.5 (k mod 4), 0.1)")
    amplitude: float = Field(5.0, description="shear of X_0 by amplitude * sin(frequency * X_1)")
    frequency: float = Field(3.0, description="frequency of the shear")


class GaussianPairParams(Params):
    dim: int = Field(1, ge=1, le=MAX_DIM)
    mean_shift: float = Field(1.0, description="mean of Q in every coordinate (P has mean 0)")
    scale_ratio: float = Field(1.0, gt=0, description="standard deviation of Q over that of P (P has 1)")


class TransformParams(Params):
    base: dict[str, Any] = Field(default_factory=_default_base, description='{"name": task, "params": {...}}')
    apply_to: Side = "both"


class SpiralParams(TransformParams):
    speed: float = Field(0.5, description="rotation angle per unit of squared norm")


class SwissRollParams(TransformParams):
    apply_to: Side = "x"


class PowerParams(TransformParams):
    alpha: float = Field(2.0, gt=0, le=20, description="exponent: x -> sign(x) |x|^alpha")


class SpiralBeyondNormalParams(TransformParams):
    speed: float = Field(1.0, description="rotation angle per unit of squared norm")
    normalise_speed: bool = Field(True, description="divide the speed by the dimension of each side")


class StaircaseCubicParams(Params):
    mi: float = Field(2.0, ge=0, description="MI level in nats")
    dim: int = Field(20, ge=1, le=MAX_DIM, description="dimension of X and of Y")


TRANSFORMS: dict[str, tuple[str, type[TransformParams]]] = {
    "half_cube": ("x -> x sqrt|x| on each coordinate", TransformParams),
    "cube": ("x -> x^3 on each coordinate", TransformParams),
    "asinh": ("x -> asinh(x) on each coordinate (heavy tails shrunk)", TransformParams),
    "normal_cdf": ("x -> Phi(x) on each coordinate (uniform margins for a Gaussian base)", TransformParams),
    "wiggly": ("x -> x + sum of small sines (Beyond Normal's wiggly maps)", TransformParams),
    "spiral": ("rotate the first two coordinates by speed * |x|^2", SpiralParams),
    "swissroll": ("embed the first coordinate as a swiss roll: d dims -> d + 1", SwissRollParams),
    "bimodal": ("x -> F^-1(Phi(x)), F a two-component Gaussian mixture CDF", TransformParams),
    "power": ("x -> sign(x) |x|^alpha on each coordinate (Beyond Normal's tails experiment)", PowerParams),
}
