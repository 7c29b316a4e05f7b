"""The Python API for notebooks and scripts: one estimate, or a whole suite."""

from __future__ import annotations

import difflib
import itertools
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harness import registry
from harness.api import Budget, Estimate
from harness.errors import UserError
from harness.paths import DEFAULT_STORE
from harness.worker import seed_everything, set_threads

MAX_SEED = 2**63  # seeds are stored as SQLite integers
HARNESS_KEYWORDS = ("seed", "steps", "batch_size", "device", "threads", "select")
MAX_CONFIGURATIONS = 1000
DEFAULT_BATCH = 256


def estimate(name: str, x: Any, y: Any, *, seed: int = 0, steps: int = 1000, batch_size: int | None = None,
             device: str = "cpu", threads: int = 1, select: dict[str, list[Any]] | None = None,
             **params: Any) -> Estimate:
    """Estimate I(X;Y) (or the estimator's target) from paired samples with a registered estimator.

    x and y are (n, d) arrays (or 1-d for d = 1) of finite real numbers with the same n and no
    constant column; a torch tensor is read on the CPU (one that requires grad is refused: the
    estimate is a number, no gradient reaches it). Every bad argument is a UserError naming it. As in a
    suite, the harness seeds Python, numpy and torch from `seed` before the fit, and torch runs
    `threads` intra-op threads for it (one by default: fastest for these small models on shared
    cores); the caller's thread count is restored afterwards.

    batch_size defaults to 256, or to n // 4 for fewer than 1024 pairs (so that a small sample still trains,
    with the few_samples flag saying so). The Estimate carries a 95% interval and sanity flags (each flag is also warned, once per
    process). `select` is a grid over the estimator's parameters ({"lr": [1e-3, 3e-4]}): every
    configuration is fitted and the one with the highest criterion (computed without any truth,
    e.g. the validation-split bound) is returned, the others listed in its diagnostics["selection"].

    >>> harness.estimate("infonce", x, y, steps=2000, critic="concat").value
    """
    from harness.suite import cell_problem
    from harness.timing import resolve_device

    registry.warn_about_problems()
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise UserError(f"name must be the name of a registered estimator (see `mi-harness list estimators`); "
                        f"got {type(name).__name__} {_shown(name)}.")
    where = f"harness.estimate({name!r})"
    spec = registry.get("estimator", name, where)
    for key in params:
        close = difflib.get_close_matches(key, HARNESS_KEYWORDS, n=1, cutoff=0.75)
        if close and key not in spec.params.model_fields:
            raise UserError(f"{where}: unknown keyword {_shown(key)}. Did you mean {close[0]!r}? harness.estimate's "
                            f"own keywords are {', '.join(HARNESS_KEYWORDS)}; the estimator's are "
                            f"{', '.join(spec.params.model_fields) or 'none'}.")
    configurations = [_validated(name, spec, where, {**params, **choice}) for choice in _grid(select, spec, where)]
    x, y = samples(x, "x"), samples(y, "y")
    if len(x) != len(y):
        raise UserError(f"{where}: x has {len(x)} rows and y has {len(y)}; pairs must line up row by row.")
    batch_size = min(DEFAULT_BATCH, max(2, len(x) // 4)) if batch_size is None else batch_size
    _check_int("seed", seed, 0, MAX_SEED - 1)
    for key, value in (("steps", steps), ("batch_size", batch_size)):
        info = Budget.model_fields[key]
        _check_int(key, value, _bound(info, "gt") + 1, _bound(info, "le"))
    _check_int("threads", threads, 1, 1024)
    if not isinstance(device, str) or len(device) > 40:
        raise UserError(f"device must be a string such as 'cpu' or 'cuda:0'; got {type(device).__name__} "
                        f"{_shown(device)}.")
    resolved = resolve_device(device)
    if resolved.type == "cpu" and resolved.index:
        raise UserError(f"device {device!r} names no device: the CPU is one device, 'cpu'.")
    budget = Budget(steps=steps, batch_size=batch_size)
    estimators = [spec.instantiate(validated) for validated in configurations]
    for estimator in estimators:  # too few samples for the batch, or more memory than this machine has
        if problem := cell_problem(estimator, len(x), budget, x.shape[1], y.shape[1]):
            raise UserError(f"{where}: {problem}")
    previous = set_threads(threads)
    try:
        fits = []
        for validated, estimator in zip(configurations, estimators, strict=True):
            seed_everything(seed)
            fits.append((validated, estimator.fit_estimate(x, y, budget, device, seed)))
    finally:
        set_threads(previous)
    result = fits[0][1] if select is None else _selected(fits, where)
    warn_flags(result)
    return result


def _validated(name: str, spec: Any, where: str, params: dict[str, Any]) -> dict[str, Any]:
    from harness.suite import validate_params

    try:
        return validate_params("estimator", name, params, where)
    except UserError as error:  # the first problem, and the parameters' names rather than the whole listing
        lines = str(error).splitlines()
        problems = [line for line in lines if not line.startswith("valid params of ")]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{_clipped(problems[0])}{more}; the parameters of {name!r}: "
                        f"{', '.join(spec.params.model_fields) or 'none'}.") from None


def _grid(select: Any, spec: Any, where: str) -> list[dict[str, Any]]:
    """The configurations a `select` grid names ([{}] without one), each a dict of parameter -> value."""
    if select is None:
        return [{}]
    if not isinstance(select, dict) or not select or not all(
            isinstance(values, list | tuple) and values for values in select.values()):
        raise UserError(f"{where}: select must be a dict of parameter name -> a non-empty list of values, e.g. "
                        f"select={{'lr': [1e-3, 3e-4]}}; got {_shown(select)}.")
    if unknown := [key for key in select if key not in spec.params.model_fields]:
        close = difflib.get_close_matches(str(unknown[0]), spec.params.model_fields, n=1, cutoff=0.75)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{where}: select names {_shown(unknown)}, not parameters of the estimator.{hint} Its "
                        f"parameters: {', '.join(spec.params.model_fields) or 'none'}.")
    keys = list(select)
    grid = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(select[k] for k in keys))]
    if len(grid) > MAX_CONFIGURATIONS:
        raise UserError(f"{where}: select names {len(grid)} configurations; at most {MAX_CONFIGURATIONS}.")
    return grid


def _selected(fits: list[tuple[dict[str, Any], Estimate]], where: str) -> Estimate:
    scored = [(params, fit) for params, fit in fits if fit.criterion is not None and math.isfinite(fit.criterion)]
    if not scored:
        raise UserError(f"{where}: no configuration reported a selection criterion (variational estimators report "
                        "their validation-split bound when checkpoint_every > 0); select needs one.")
    params, best = max(scored, key=lambda pair: pair[1].criterion)
    best.diagnostics["selection"] = [{"params": p, "criterion": fit.criterion, "value": fit.value} for p, fit in fits]
    best.diagnostics["selected_params"] = params
    return best


_WARNED: set[str] = set()


def warn_flags(result: Estimate) -> None:
    """Warn about each sanity flag of an estimate, once per flag name per process."""
    for name, sentence in result.flags.items():
        if name not in _WARNED:
            _WARNED.add(name)
            warnings.warn(f"{name}: {sentence} (harness.estimate warns once per flag; Estimate.flags lists them)",
                          EstimateFlag, stacklevel=3)


class EstimateFlag(UserWarning):
    """A sanity flag raised by an estimate (harness.Estimate.flags)."""


def samples(values: Any, name: str) -> np.ndarray:
    """`values` as an (n, d) float64 array of finite numbers, or a UserError naming what is wrong."""
    if hasattr(values, "detach"):  # a torch tensor, perhaps on a GPU
        values = _tensor_values(values, name)
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged nested lists, objects numpy cannot read
        raise UserError(f"{name} is not a rectangular array of numbers: its rows differ in length or mix "
                        "numbers with sequences.") from None
    if array.dtype.kind not in "biuf":  # bool, signed, unsigned, floating: not complex, text, objects, dates
        raise UserError(f"{name} must hold real numbers (an int, float or bool array); got "
                        f"{type(values).__name__} of dtype {array.dtype}.")
    array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] == 0 or len(array) < 2:
        raise UserError(f"{name} must be an (n, d) array with n >= 2 rows and d >= 1 columns; got shape "
                        f"{_shown(array.shape)}.")
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise UserError(f"{name} holds {int(bad.sum())} NaN or infinite value(s), the first at row {row}, column "
                        f"{column}; remove or impute them first.")
    refuse_constant_columns(array, name)
    return array


def refuse_constant_columns(array: np.ndarray, name: str) -> None:
    """A UserError for a column that never changes; estimators that divide by a spread call it too."""
    constant = np.flatnonzero(np.ptp(np.asarray(array), axis=0) == 0)
    if constant.size:
        raise UserError(f"{name}: column(s) {constant.tolist()[:10]} are constant; a constant carries no "
                        "information (its MI with anything is 0): drop it.")


def _tensor_values(tensor: Any, name: str) -> np.ndarray:
    """A torch tensor's values on the CPU (floating point as float64); one that requires grad is refused,
    since the estimate is a number and no gradient would reach it."""
    if getattr(tensor, "requires_grad", False):
        raise UserError(f"{name} is a tensor that requires grad; harness.estimate returns a number, not a "
                        f"differentiable value: pass {name}.detach().")
    try:
        tensor = tensor.detach().cpu()
        return (tensor.double() if tensor.is_floating_point() else tensor).numpy()
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError) as error:
        raise UserError(f"{name} is a tensor that cannot be read as an array of numbers "
                        f"({_clipped(str(error), 100)}); pass a dense CPU tensor or a numpy array.") from None


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UserError(f"{name} must be an integer; got {type(value).__name__} {_shown(value)}.")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}; got {_shown(value)}.")


def _bound(info: Any, which: str) -> int:
    """A Budget field's bound (`gt` or `le`), so the API's ranges are the suite file's."""
    return next(getattr(rule, which) for rule in info.metadata if getattr(rule, which, None) is not None)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _clipped(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit - 40]}... ({len(text)} characters)"


def pmi_profile(task: str, n: int = 10_000, seed: int = 0, **params: Any) -> np.ndarray:
    """Samples of the pointwise MI, log p(x, y) / (p(x) p(y)), at n pairs drawn from the task's joint.

    Their mean is the task's MI (within its standard error, sd / sqrt(n)); their spread says how hard
    the task is for the NWJ / DV bounds, whose variance grows with it (Czyz et al. 2023). `task` is a
    registered name or a call ("half_cube(gaussian(dim=3, mi=1.0))"); the task must know its log
    density ratio (harness.api.DensityRatioTask), else a UserError says so.

    >>> harness.pmi_profile("gaussian", dim=2, mi=1.0).mean()  # about 1.0
    """
    from harness.api import DensityRatioTask
    from harness.call_syntax import parse_reference
    from harness.suite import validate_params

    registry.warn_about_problems()
    if not isinstance(task, str):
        raise UserError(f"task must be a registered task's name or call, e.g. 'gaussian(dim=2)'; got "
                        f"{type(task).__name__} {_shown(task)}.")
    where = f"harness.pmi_profile({_shown(task)})"
    name, called = parse_reference(task, "task", where)
    _check_int("n", n, 1, 10_000_000)
    _check_int("seed", seed, 0, MAX_SEED - 1)
    built = registry.get("task", name, where).instantiate(validate_params("task", name, {**called, **params}, where))
    if built.measures != "mi" or not isinstance(built, DensityRatioTask):
        raise UserError(f"{where}: task {name!r} does not know its pointwise MI (it has no log_density_ratio), "
                        "so it has no PMI profile.")
    x, y = built.sample(n, np.random.default_rng(seed))
    return np.asarray(built.log_density_ratio(x, y), dtype=np.float64)


def run_suite(path: str | Path, *, store: str | Path = DEFAULT_STORE, run: str | None = None,
              jobs: int = 1, device: str | None = None, report_dir: str | Path | None = None):
    """Run a suite file (resuming), optionally write its report, and return the summary table."""
    from harness import metrics, report, runner, suite
    from harness.runner import make_executor
    from harness.store import Store

    registry.warn_about_problems()
    loaded = suite.load(path, device=device)
    results = Store(store)
    summary = runner.run(loaded, results, run, make_executor("local", jobs), show_progress=False)
    if report_dir is not None:
        report.build(results, summary.run, report_dir)
    return metrics.summarise(results.cells(summary.run))
