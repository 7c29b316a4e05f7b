"""Composable tasks: an invertible map applied to X, Y or both sides of any registered MI task.

`half_cube(multinormal_sparse(5, 5, pairs=2))` in a suite becomes the params
{"base": {"name": "multinormal_sparse", "params": {...}}, "apply_to": "both"}.
MI and every f-information are invariant under injective maps of each side, so the
ground truth is the base task's; the log density ratio is the base ratio at the inverted point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.api import GroundTruth, Params
from plugins.tasks import diffeomorphisms as d
from plugins.tasks.base import MITask, check
from plugins.tasks.params import (
    SpiralBeyondNormalParams,
    StaircaseCubicParams,
    TransformParams,
)


class TransformTask(MITask):
    """The push-forward of a base MI task through (f_x, f_y); None leaves a side unchanged."""

    def __init__(self, name: str, params: Params, base: MITask,
                 on_x: d.Diffeomorphism | None, on_y: d.Diffeomorphism | None) -> None:
        super().__init__(name, params)
        check(getattr(base, "measures", None) == "mi",
              f"{name}: the base task must be an MI task (measures 'mi'), got one that measures "
              f"{getattr(base, 'measures', None)!r}.")
        self.base, self.on_x, self.on_y = base, on_x, on_y
        self.dim_x = on_x.out_dim(base.dim_x) if on_x else base.dim_x
        self.dim_y = on_y.out_dim(base.dim_y) if on_y else base.dim_y

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.base.sample(n, rng)
        return (self.on_x.forward(x) if self.on_x else x), (self.on_y.forward(y) if self.on_y else y)

    def invert(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.on_x.inverse(x) if self.on_x else x), (self.on_y.inverse(y) if self.on_y else y)

    def log_density_ratio(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.base.log_density_ratio(*self.invert(x, y))

    def ground_truth(self, target: str = "mi") -> GroundTruth:
        return self.base.ground_truth(target)


def build_base(base: Any, where: str) -> MITask:
    """Instantiate {"name": ..., "params": {...}} through the registry (so plugins compose too)."""
    from harness import registry

    check(isinstance(base, dict) and isinstance(base.get("name"), str) and set(base) <= {"name", "params"},
          f"{where}: base must be {{'name': <task name>, 'params': {{...}}}}, got {base!r}.")
    params = base.get("params") or {}
    check(isinstance(params, dict), f"{where}: base params must be a table of fields, got {params!r}.")
    return registry.get("task", base["name"], where=where).instantiate(params)


def _sided(params: TransformParams, make: Callable[[str], d.Diffeomorphism]):
    on_x = make("x") if params.apply_to in ("x", "both") else None
    on_y = make("y") if params.apply_to in ("y", "both") else None
    return on_x, on_y


def _builder(name: str, make: Callable[[Any, str], d.Diffeomorphism]):
    def build(params: TransformParams) -> TransformTask:
        base = build_base(params.base, where=f"task {name}")
        return TransformTask(name, params, base, *_sided(params, lambda side: make(params, side)))

    build.__name__ = f"build_{name}"
    return build


build_half_cube = _builder("half_cube", lambda p, side: d.HalfCube())
build_cube = _builder("cube", lambda p, side: d.Cube())
build_asinh = _builder("asinh", lambda p, side: d.Asinh())
build_normal_cdf = _builder("normal_cdf", lambda p, side: d.NormalCDF())
build_wiggly = _builder("wiggly", lambda p, side: d.WIGGLY_X if side == "x" else d.WIGGLY_Y)
build_spiral = _builder("spiral", lambda p, side: d.Spiral(speed=p.speed))
build_swissroll = _builder("swissroll", lambda p, side: d.SwissRoll())
build_bimodal = _builder("bimodal", lambda p, side: d.BIMODAL_X if side == "x" else d.BIMODAL_Y)
build_power = _builder("power", lambda p, side: d.Power(alpha=p.alpha))


def _so_generator(n: int, i: int, j: int) -> np.ndarray:
    """The (i, j) generator of so(n): -1 at [i, j], +1 at [j, i]."""
    generator = np.zeros((n, n))
    generator[i, j], generator[j, i] = -1.0, 1.0
    return generator


# Beyond Normal's fixed rotations, exp of these so(n) combinations: (weight, i, j) per side.
_ROTATION_GENERATORS = {"x": [(2.0, 0, 1), (-1.0, 1, 2), (-1.0, 0, 2)], "y": [(1.0, 0, 1), (2.0, 1, 2)]}


def rotation(dim: int, side: str) -> d.Orthogonal:
    """The rotation Beyond Normal's `rotate` applies to that side (v -> v @ expm(sum w G_ij))."""
    from scipy.linalg import expm

    check(dim >= 3, f"rotate needs at least 3 dimensions on the side it is applied to, got {dim}.")
    generator = sum(w * _so_generator(dim, i, j) for w, i, j in _ROTATION_GENERATORS[side])
    return d.Orthogonal(expm(generator), name=f"rotate_{side}")


def build_rotate(params: TransformParams) -> TransformTask:
    base = build_base(params.base, where="task rotate")
    dims = {"x": base.dim_x, "y": base.dim_y}
    return TransformTask("rotate", params, base, *_sided(params, lambda side: rotation(dims[side], side)))


def build_spiral_beyond_normal(params: SpiralBeyondNormalParams) -> TransformTask:
    """Beyond Normal's spiral: X turned in the plane of coordinates (0, 1), Y in (1, 2), each at
    speed / its dimension when normalise_speed (the published default, speed 1)."""
    base = build_base(params.base, where="task spiral_beyond_normal")
    dims, planes = {"x": base.dim_x, "y": base.dim_y}, {"x": (0, 1), "y": (1, 2)}

    def make(side: str) -> d.Spiral:
        speed = params.speed / dims[side] if params.normalise_speed else params.speed
        return d.Spiral(speed=speed, plane=planes[side])

    return TransformTask("spiral_beyond_normal", params, base, *_sided(params, make))



def build_staircase_cubic(params: StaircaseCubicParams) -> TransformTask:
    """Poole et al. 2019's cubic staircase: the staircase Gaussian with y <- y^3."""
    from plugins.tasks.gaussian import StaircaseParams, build_staircase

    base = build_staircase(StaircaseParams(mi=params.mi, dim=params.dim))
    return TransformTask("staircase_cubic", params, base, None, d.Cube())
