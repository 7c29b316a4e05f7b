"""Suite files (TOML) -> a validated Suite -> the grid of Cells."""

from __future__ import annotations

import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import registry
from harness.api import Budget, ChecksItsBudget, PluginKind
from harness.call_syntax import parse_reference
from harness.cells import Cell
from harness.errors import UserError, describe_validation_error, shorten
from harness.paths import name_problem

MAX_CELLS = 100_000  # the default of `mi-harness run --max-cells`
MAX_DEPTH = 64  # tables and arrays inside one another; a deep call syntax in tables needs two a level
MAX_FILE_BYTES = 64 * 2**20
INT64 = 2**63  # seeds, sizes and parameters all end up in SQLite's 64-bit integers
DEVICE = re.compile(r"cpu|cuda(:\d{1,4})?")
# Plugin parameters are validated strictly on these points only (a TOML file has no tuple, for one):
# a bool is not a number, nor a string a number, nor a number a bool or a string.
STRICT_TYPES = {"int_type", "float_type", "bool_type", "string_type"}


class _Strict(BaseModel):
    """No unknown keys, and no value taken for another type: `true` is no integer, "200" no number."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Entry(_Strict):
    """One [[estimators]], [[tasks]], [[encoders]] or [[datasets]] table."""

    name: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    label: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _grid_and_params_disjoint(self) -> Entry:
        both = set(self.params) & set(self.grid)
        if both:
            raise ValueError(f"parameter(s) {sorted(both)} appear in both params and grid; keep one")
        return self


class Header(_Strict):
    name: str
    description: str = ""
    seeds: Annotated[list[Annotated[int, Field(ge=0, lt=INT64)]], Field(min_length=1, max_length=1000)] = [0]
    device: str = "cpu"
    preprocess: Literal["none", "standardize"] = "none"

    @field_validator("name")
    @classmethod
    def _one_folder(cls, name: str) -> str:
        if problem := name_problem(name):
            raise ValueError(f"the [suite] name {problem}, since it names the run's folder of reports")
        return name

    @field_validator("device")
    @classmethod
    def _a_device(cls, device: str) -> str:
        return check_device(device, "the [suite] device")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds


class BudgetTable(Budget):
    """[budget]: a cell's Budget, and the sample sizes every cell is run at (two at least: one pair is no sample)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    samples: Annotated[list[Annotated[int, Field(ge=2, le=10_000_000)]], Field(min_length=1)] = [5000]


class Selection(_Strict):
    """[select.<label>]: configurations of one [[estimators]] entry, of which each cell keeps the one whose
    criterion (Estimate.criterion, computed without the truth) is highest; the report sets the choice the
    truth would have made beside it."""

    grid: Annotated[dict[str, Annotated[list[Any], Field(min_length=1)]], Field(min_length=1)]


class SuiteFile(_Strict):
    suite: Header
    budget: BudgetTable = BudgetTable()
    estimators: list[Entry] = []
    tasks: list[Entry] = []
    encoders: list[Entry] = []
    datasets: list[Entry] = []
    select: dict[str, Selection] = {}

    @model_validator(mode="after")
    def _has_a_grid(self) -> SuiteFile:
        estimation = bool(self.estimators) and bool(self.tasks)
        representation = bool(self.encoders) and bool(self.datasets)
        if not (estimation or representation):
            raise ValueError(
                "the suite has no cells: give at least one [[estimators]] and one [[tasks]] table, "
                "or at least one [[encoders]] and one [[datasets]] table"
            )
        if bool(self.estimators) != bool(self.tasks) or bool(self.encoders) != bool(self.datasets):
            raise ValueError("[[estimators]] need [[tasks]] and [[encoders]] need [[datasets]]; one side is empty")
        if estimation and representation:
            raise ValueError("a suite is either an estimation suite ([[estimators]] and [[tasks]]) or a "
                             "representation suite ([[encoders]] and [[datasets]]), not both; split it in two files")
        self._selections_name_entries()
        return self

    def _selections_name_entries(self) -> None:
        for label, selection in self.select.items():
            shown = label if len(label) <= 40 else f"{label[:30]}... ({len(label)} characters)"
            entries = [e for e in self.estimators if (e.label or e.name) == label]
            if not entries:
                known = ", ".join(shorten(e.label or e.name, 40) for e in self.estimators) or "none"
                raise ValueError(f"[select.{shown}] names no [[estimators]] entry by its label; "
                                 f"the labels are: {known}")
            for entry in entries:
                if entry.grid:
                    raise ValueError(f"[select.{shown}]: its [[estimators]] entry has a grid of its own; "
                                     "put those values in the [select] grid (one grid per entry)")
                if both := sorted(set(selection.grid) & set(entry.params)):
                    raise ValueError(f"[select.{shown}]: {both} are set in the entry's params too; "
                                     "keep each parameter in one place")


def check_device(device: str, field: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' (whether this machine has it is checked at load); else a sentence naming field."""
    if not DEVICE.fullmatch(device):
        raise ValueError(f"{field} names no device; use 'cpu', 'cuda' or 'cuda:N'")
    return device


@dataclass
class Suite:
    name: str
    description: str
    path: str
    cells: list[Cell]
    source: dict[str, Any]


def load(path: str | Path, device: str | None = None, max_cells: int | None = None) -> Suite:
    """Read, validate and expand a suite file (or the name of a registered suite).

    Everything that can be known before the first cell is checked here: the file's values, the grid's size
    (from the axes, before expanding), every plugin's parameters, and labels.
    """
    from harness.timing import resolve_device  # torch: checks the device against this machine
    path, registered = resolve_path(path)
    raw = read_toml(path)
    try:
        parsed = SuiteFile.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_validation_error(path, error, model=SuiteFile)) from None
    if registered is not None and parsed.suite.name != registered:
        raise UserError(f"suite {registered!r} (registered by plugin {registry.owner('suite', registered)!r}) points "
                        f"at {path}, whose [suite] name is {parsed.suite.name!r}; the two must match.")
    if device:
        try:
            check_device(device, f"--device {shorten(device)}")
        except ValueError as error:
            raise UserError(f"{path}: {error}.") from None
    try:
        resolve_device(device or parsed.suite.device)
    except UserError as error:
        raise UserError(f"{path}: {'--device' if device else 'suite.device'}: {error}") from None
    device = device or parsed.suite.device
    check_size(parsed, str(path), MAX_CELLS if max_cells is None else max_cells)
    cells = expand(parsed, str(path), device)
    return Suite(parsed.suite.name, parsed.suite.description, str(path), cells, raw)


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables, with every value checked to be one a suite can hold (depth, integers, finite numbers)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"{path}: a suite file of {size} bytes is too large; at most {MAX_FILE_BYTES}.")
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}.") from None
    except RecursionError:
        raise UserError(f"{path}: tables or arrays nest too deeply to read; at most {MAX_DEPTH} levels.") from None
    except ValueError as error:  # an integer past Python's digit limit, or a date that does not exist
        reason = " ".join(str(error).split())[:200].rstrip(".")
        raise UserError(f"{path}: cannot be read as TOML: {reason}. Integers in a suite file must fit in 64 bits, "
                        "and dates must be real dates.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read: {error}.") from None
    check_values(raw, str(path))
    return raw


def check_values(value: Any, where: str, loc: str = "") -> None:
    """No nesting past MAX_DEPTH, integers in 64 bits, finite floats; walked without recursion."""
    stack = [(value, loc, 0)]
    while stack:
        item, at, depth = stack.pop()
        place = f"{where}: {at or 'top level'}"
        if depth > MAX_DEPTH:
            raise UserError(f"{place}: tables or arrays nest more than {MAX_DEPTH} levels deep.")
        if isinstance(item, dict):
            stack.extend((v, f"{at}.{k}" if at else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{at}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, complex | bytes | set | frozenset) or item is Ellipsis:  # from the call syntax
            raise UserError(f"{place}: {shorten(item)} is no value a suite holds; give a number, a string, "
                            "a boolean, a list or a table.")
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT64 <= item < INT64:
            raise UserError(f"{place}: the integer {shorten(item)} does not fit in 64 bits; give one between "
                            f"{-INT64} and {INT64 - 1}.")
        elif isinstance(item, float) and not math.isfinite(item):
            raise UserError(f"{place}: {item} is not a finite number; give a finite value.")


def variant_count(entry: Entry, select: dict[str, Selection] | None = None) -> int:
    selection = (select or {}).get(entry.label or entry.name)
    grid = {**entry.grid, **(selection.grid if selection else {})}
    return math.prod(len(values) for values in grid.values())


def check_size(parsed: SuiteFile, path: str, max_cells: int) -> None:
    """The grid's size from its axes (nothing expanded): refused when over max_cells, showing the product."""
    def plural(count: int, what: str) -> str:
        return f"{count} {what}{'' if count == 1 else 's'}"

    if parsed.estimators:
        estimators = sum(variant_count(entry, parsed.select) for entry in parsed.estimators)
        axes = [plural(estimators, "estimator variant"),
                plural(sum(map(variant_count, parsed.tasks)), "task variant"),
                plural(len(parsed.budget.samples), "size")]
        counts = [estimators, sum(map(variant_count, parsed.tasks)), len(parsed.budget.samples)]
    else:
        axes = [plural(sum(map(variant_count, parsed.encoders)), "encoder variant"),
                plural(sum(map(variant_count, parsed.datasets)), "dataset variant")]
        counts = [sum(map(variant_count, parsed.encoders)), sum(map(variant_count, parsed.datasets))]
    axes.append(plural(len(parsed.suite.seeds), "seed"))
    total = math.prod(counts) * len(parsed.suite.seeds)
    if total > max_cells:
        raise UserError(f"{path}: the grid has {' x '.join(axes)} = {total} cells, more than the limit of "
                        f"{max_cells}; make the grid smaller or raise the limit (mi-harness run --max-cells).")


def resolve_path(path: str | Path) -> tuple[Path, str | None]:
    """The suite file, and the registered name it was asked for by (None for a path)."""
    candidate = Path(path)
    try:
        if candidate.is_file():
            return candidate, None
    except (OSError, ValueError):  # a name too long for a path, or one with a NUL
        pass
    suites = registry.specs("suite")
    if str(path) in suites:
        return Path(suites[str(path)].path), str(path)
    if candidate.suffix == ".toml" or "/" in str(path) or name_problem(str(path)):
        raise UserError(f"suite file {shorten(str(path))} does not exist. "
                        f"Registered suites: {', '.join(sorted(suites))}.")
    registry.get("suite", str(path))  # raises, saying where the name would have come from
    raise AssertionError("unreachable")


def expand(parsed: SuiteFile, path: str, device: str) -> list[Cell]:
    budget = Budget(**parsed.budget.model_dump(exclude={"samples"}))
    if parsed.estimators:
        study, sides, samples = "estimation", (("estimators", "estimator"), ("tasks", "task")), parsed.budget.samples
    else:
        study, sides, samples = "representation", (("encoders", "encoder"), ("datasets", "dataset")), [0]
    (method_table, method_kind), (data_table, data_kind) = sides
    methods = resolved_variants(path, method_table, method_kind, getattr(parsed, method_table), parsed.select)
    datas = resolved_variants(path, data_table, data_kind, getattr(parsed, data_table))
    for variants in (methods, datas):
        check_labels(path, variants, selected=set(parsed.select))
    if study == "estimation":
        shapes = task_shapes(datas)
        check_data_memory(path, shapes, max(samples))
        check_budgets(path, methods, shapes, samples, budget)
    cells: dict[str, Cell] = {}
    for (m_name, m_params, m_label, m_where), (d_name, d_params, d_label, d_where), n, seed in itertools.product(
        methods, datas, samples, parsed.suite.seeds
    ):
        cell = Cell(parsed.suite.name, study, m_name, m_params, d_name, d_params, seed, n, budget, device,
                    m_label, d_label, parsed.suite.preprocess)
        if cell.key in cells:
            raise UserError(f"{path}: {m_where} and {d_where} repeat a cell already in the grid ({cell}); "
                            "remove the duplicate entry or change its params.")
        cells[cell.key] = cell
    return list(cells.values())


@dataclass(frozen=True)
class TaskShape:
    """A task variant's place in the suite file and its dimensions: what the checks before the first cell need."""

    label: str
    where: str
    dim_x: int
    dim_y: int


def task_shapes(tasks: list[tuple[str, dict[str, Any], str, str]]) -> list[TaskShape]:
    """Each task variant built once (building a task draws no samples) for its dimensions."""
    shapes = []
    for name, params, label, where in tasks:
        task = registry.get("task", name).instantiate(params)
        shapes.append(TaskShape(label, where, int(task.dim_x), int(task.dim_y)))
    return shapes


def check_budgets(path: str, methods: list[tuple[str, dict[str, Any], str, str]], tasks: list[TaskShape],
                  samples: list[int], budget: Budget) -> None:
    """Every estimator variant that can say so is asked whether each task and sample size serve the budget
    on this machine (cell_problem)."""
    available = available_memory()
    for name, params, label, where in methods:
        estimator = registry.get("estimator", name).instantiate(params)
        for task, n in itertools.product(tasks, samples):
            problem = cell_problem(estimator, n, budget, task.dim_x, task.dim_y, available)
            if problem:
                raise UserError(f"{path}: {where} ({shorten(label)}) on {task.where} ({shorten(task.label)}) at "
                                f"samples = {n}: {problem}")


def cell_problem(estimator: Any, n: int, budget: Budget, dim_x: int, dim_y: int,
                 available: int | None = None) -> str | None:
    """Why `estimator` cannot serve one cell of n pairs of (dim_x, dim_y) under `budget` on this machine, or
    None: its own budget_problem (harness.api.ChecksItsBudget), told the memory free beside the cell's
    data. `available`: this machine's free bytes as available_memory() reads them (read now when None)."""
    if not isinstance(estimator, ChecksItsBudget):
        return None
    available = available_memory() if available is None else available
    free = max(0, available - data_bytes(n, dim_x, dim_y)) if available else None
    return estimator.budget_problem(n, budget, dim_x, dim_y, free)


def data_bytes(n: int, dim_x: int, dim_y: int) -> int:
    """A cell holds its samples about three times: drawn (float64), preprocessed, float32 for training."""
    return 3 * 8 * n * (dim_x + dim_y)


def check_data_memory(path: str, tasks: list[TaskShape], n: int) -> None:
    """Refuse a task and sample size whose data alone would not fit in the memory this machine has free."""
    available = available_memory()
    for task in tasks:
        needed = data_bytes(n, task.dim_x, task.dim_y)
        if available and needed > available:
            raise UserError(f"{path}: {task.where} ({shorten(task.label)}) at samples = {n}: its data alone needs "
                            f"about {needed / 2**30:.1f} GiB ({n} x ({task.dim_x} + {task.dim_y}) float64 values, "
                            f"held three times), and this machine has {available / 2**30:.1f} GiB free; use fewer "
                            "samples or dimensions.")


def available_memory() -> int:
    """Bytes of memory this machine has free (MemAvailable), or 0 where it cannot tell."""
    try:
        with open("/proc/meminfo") as info:
            return next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return 0


def check_labels(path: str, variants: list[tuple[str, dict[str, Any], str, str]], selected: set[str] = frozenset()
                 ) -> None:
    """One label, one method: the report pools by label, so two variants that differ must not share one
    (a [select] label's configurations share theirs: the report keeps one of them per cell)."""
    seen: dict[str, tuple[str, str]] = {}
    for name, params, label, where in variants:
        identity = json.dumps([name, params if label not in selected else {}], sort_keys=True, default=str)
        first = seen.setdefault(label, (identity, where))
        if first[0] != identity:
            raise UserError(f"{path}: {first[1]} and {where} share the label {shorten(label)} but differ in name or "
                            "params, and the report would pool them as one; give each its own label.")


def resolved_variants(path: str, table: str, kind: PluginKind, entries: list[Entry],
                      select: dict[str, Selection] | None = None):
    """Each entry's grid expanded, names resolved and params validated against the plugin's model; an entry
    named by a [select] table expands over that grid and every configuration keeps the entry's label."""
    out = []
    for index, entry in enumerate(entries):
        where = f"{table}[{index}]"
        name, expression_params = parse_reference(entry.name, kind, f"{path}: {where}.name")
        check_values(expression_params, path, f"{where}.name")
        registry.get(kind, name, f"{path}: {where}.name")
        selection = (select or {}).get(entry.label or entry.name)
        grid = selection.grid if selection else entry.grid
        grid_keys = list(grid)
        for values in itertools.product(*(grid[k] for k in grid_keys)):
            params = {**expression_params, **entry.params, **dict(zip(grid_keys, values, strict=True))}
            place = f"select.{entry.label or entry.name}" if selection else f"{where} ({name})"
            validated = validate_params(kind, name, params, f"{path}: {place}")
            shown = {k: validated[k] for k in [*expression_params, *entry.params, *grid_keys]}
            label = entry.label or describe(name, shown)
            if selection:
                label = entry.label or entry.name
            elif entry.label and grid_keys:
                label = f"{entry.label}[{', '.join(f'{k}={v}' for k, v in zip(grid_keys, values, strict=True))}]"
            out.append((name, validated, label, where))
    return out


def describe(name: str, params: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"name", "params"}:
            return describe(value["name"], value["params"])
        return str(value)

    inner = ", ".join(f"{k}={show(v)}" for k, v in params.items())
    return f"{name}({inner})" if inner else name


def validate_params(kind: PluginKind, name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    spec = registry.get(kind, name, where)
    try:
        model = spec.params(**params)
        _strictly(spec.params, params)
    except ValidationError as error:
        fields = spec.params.describe_fields()
        raise UserError(
            describe_validation_error(where, error, prefix="params.", model=spec.params)
            + f"\nvalid params of {kind} {name!r}: {fields or 'none'}."
        ) from None
    dumped = model.model_dump(mode="json")
    for key, value in dumped.items():
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            place = f"{where}.params.{key}"
            extra = sorted(set(value) - {"name", "params"})
            if extra or not isinstance(value.get("params", {}), dict):
                raise UserError(f"{place}: a {kind} given as a table holds `name` and `params` only "
                                f"(got {shorten(extra or 'params')}); write {{ name = ..., params = {{ ... }} }}.")
            dumped[key] = {"name": value["name"],
                           "params": validate_params(kind, value["name"], value.get("params", {}), place)}
    return dumped


def _strictly(model: type[BaseModel], params: dict[str, Any]) -> None:
    """Raise the strict validation's type errors (a bool or a string given for a number, and so on)."""
    try:
        model.model_validate(params, strict=True)
    except ValidationError as error:
        kept = [{"type": problem["type"], "loc": problem["loc"], "input": problem["input"]}
                for problem in error.errors() if problem["type"] in STRICT_TYPES]
        if kept:
            raise ValidationError.from_exception_data(error.title, kept) from None  # type: ignore[arg-type]
