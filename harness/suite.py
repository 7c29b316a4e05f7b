"""Suite files (TOML) -> a validated Suite -> the grid of Cells."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import registry
from harness.api import NAME_PATTERN, Budget, PluginKind
from harness.call_syntax import parse_reference
from harness.cells import Cell
from harness.errors import UserError, describe_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entry(_Strict):
    """One [[estimators]], [[tasks]], [[encoders]] or [[datasets]] table."""

    name: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    label: str | None = None

    @model_validator(mode="after")
    def _grid_and_params_disjoint(self) -> Entry:
        both = set(self.params) & set(self.grid)
        if both:
            raise ValueError(f"parameter(s) {sorted(both)} appear in both params and grid; keep one")
        return self


class Header(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=1000)] = [0]
    device: str = "cpu"
    preprocess: Literal["none", "standardize"] = "none"

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds


class BudgetTable(Budget):
    """[budget]: a cell's Budget, and the sample sizes every cell is run at."""

    samples: Annotated[list[Annotated[int, Field(gt=0, le=10_000_000)]], Field(min_length=1)] = [5000]


class SuiteFile(_Strict):
    suite: Header
    budget: BudgetTable = BudgetTable()
    estimators: list[Entry] = []
    tasks: list[Entry] = []
    encoders: list[Entry] = []
    datasets: list[Entry] = []

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
        return self


@dataclass
class Suite:
    name: str
    description: str
    path: str
    cells: list[Cell]
    source: dict[str, Any]


def load(path: str | Path, device: str | None = None) -> Suite:
    """Read, validate and expand a suite file (or the name of a registered suite)."""
    from harness.timing import resolve_device  # torch: checks the device against this machine
    path, registered = resolve_path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read: {error}.") from None
    try:
        parsed = SuiteFile.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_validation_error(path, error, model=SuiteFile)) from None
    if registered is not None and parsed.suite.name != registered:
        raise UserError(f"suite {registered!r} (registered by plugin {registry.owner('suite', registered)!r}) points "
                        f"at {path}, whose [suite] name is {parsed.suite.name!r}; the two must match.")
    try:
        resolve_device(device or parsed.suite.device)
    except UserError as error:
        raise UserError(f"{path}: {'--device' if device else 'suite.device'}: {error}") from None
    device = device or parsed.suite.device
    cells = expand(parsed, str(path), device)
    return Suite(parsed.suite.name, parsed.suite.description, str(path), cells, raw)


def resolve_path(path: str | Path) -> tuple[Path, str | None]:
    """The suite file, and the registered name it was asked for by (None for a path)."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate, None
    suites = registry.specs("suite")
    if str(path) in suites:
        return Path(suites[str(path)].path), str(path)
    if candidate.suffix == ".toml" or "/" in str(path):
        raise UserError(f"suite file {path} does not exist. Registered suites: {', '.join(sorted(suites))}.")
    registry.get("suite", str(path))  # raises, saying where the name would have come from
    raise AssertionError("unreachable")


def expand(parsed: SuiteFile, path: str, device: str) -> list[Cell]:
    budget = Budget(**parsed.budget.model_dump(exclude={"samples"}))
    if parsed.estimators:
        study, sides, samples = "estimation", (("estimators", "estimator"), ("tasks", "task")), parsed.budget.samples
    else:
        study, sides, samples = "representation", (("encoders", "encoder"), ("datasets", "dataset")), [0]
    (method_table, method_kind), (data_table, data_kind) = sides
    methods = resolved_variants(path, method_table, method_kind, getattr(parsed, method_table))
    datas = resolved_variants(path, data_table, data_kind, getattr(parsed, data_table))
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


def resolved_variants(path: str, table: str, kind: PluginKind, entries: list[Entry]):
    """Each entry's grid expanded, names resolved and params validated against the plugin's model."""
    out = []
    for index, entry in enumerate(entries):
        where = f"{table}[{index}]"
        name, expression_params = parse_reference(entry.name, kind, f"{path}: {where}.name")
        registry.get(kind, name, f"{path}: {where}.name")
        grid_keys = list(entry.grid)
        for values in itertools.product(*(entry.grid[k] for k in grid_keys)):
            params = {**expression_params, **entry.params, **dict(zip(grid_keys, values, strict=True))}
            validated = validate_params(kind, name, params, f"{path}: {where} ({name})")
            shown = {k: validated[k] for k in [*expression_params, *entry.params, *grid_keys]}
            label = entry.label or describe(name, shown)
            if entry.label and grid_keys:
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
    except ValidationError as error:
        fields = spec.params.describe_fields()
        raise UserError(
            describe_validation_error(where, error, prefix="params.", model=spec.params)
            + f"\nvalid params of {kind} {name!r}: {fields or 'none'}."
        ) from None
    dumped = model.model_dump(mode="json")
    for key, value in dumped.items():
        if isinstance(value, dict) and set(value) == {"name", "params"}:
            dumped[key] = {"name": value["name"],
                           "params": validate_params(kind, value["name"], value["params"], f"{where}.params.{key}")}
    return dumped
