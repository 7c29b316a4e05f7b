"""Suite files (TOML) -> a validated Suite -> the grid of Cells."""

from __future__ import annotations

import ast
import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import registry
from harness.api import NAME_PATTERN, Budget, Kind
from harness.cells import Cell
from harness.errors import UserError, describe_validation_error, unknown_name
from harness.timing import resolve_device


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


class BudgetTable(_Strict):
    samples: Annotated[list[Annotated[int, Field(gt=0, le=10_000_000)]], Field(min_length=1)] = [5000]
    steps: Annotated[int, Field(gt=0, le=1_000_000)] = 1000
    batch_size: Annotated[int, Field(gt=1, le=65_536)] = 64
    epochs: Annotated[int, Field(gt=0, le=100_000)] = 100


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
    path = resolve_path(path)
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
    try:
        resolve_device(device or parsed.suite.device)
    except UserError as error:
        raise UserError(f"{path}: {'--device' if device else 'suite.device'}: {error}") from None
    device = device or parsed.suite.device
    cells = expand(parsed, str(path), device)
    return Suite(parsed.suite.name, parsed.suite.description, str(path), cells, raw)


def resolve_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    suites = registry.specs("suite")
    if str(path) in suites:
        return Path(suites[str(path)].path)
    if candidate.suffix == ".toml" or "/" in str(path):
        raise UserError(f"suite file {path} does not exist. Registered suites: {', '.join(sorted(suites))}.")
    raise unknown_name("suite", str(path), list(suites))


def expand(parsed: SuiteFile, path: str, device: str) -> list[Cell]:
    budget = Budget(steps=parsed.budget.steps, batch_size=parsed.budget.batch_size, epochs=parsed.budget.epochs)
    if parsed.estimators:
        kind, sides, samples = "estimation", (("estimators", "estimator"), ("tasks", "task")), parsed.budget.samples
    else:
        kind, sides, samples = "representation", (("encoders", "encoder"), ("datasets", "dataset")), [0]
    (method_table, method_kind), (data_table, data_kind) = sides
    methods = resolved_variants(path, method_table, method_kind, getattr(parsed, method_table))
    datas = resolved_variants(path, data_table, data_kind, getattr(parsed, data_table))
    cells: dict[str, Cell] = {}
    for (m_name, m_params, m_label, m_where), (d_name, d_params, d_label, d_where), n, seed in itertools.product(
        methods, datas, samples, parsed.suite.seeds
    ):
        cell = Cell(parsed.suite.name, kind, m_name, m_params, d_name, d_params, seed, n, budget, device,
                    m_label, d_label, parsed.suite.preprocess)
        if cell.key in cells:
            raise UserError(f"{path}: {m_where} and {d_where} repeat a cell already in the grid ({cell}); "
                            "remove the duplicate entry or change its params.")
        cells[cell.key] = cell
    return list(cells.values())


def resolved_variants(path: str, table: str, kind: Kind, entries: list[Entry]):
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


def validate_params(kind: Kind, name: str, params: dict[str, Any], where: str) -> dict[str, Any]:
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


def parse_reference(text: str, kind: Kind, where: str) -> tuple[str, dict[str, Any]]:
    """'half_cube(gaussian(dim=5, mi=1.0))' -> ('half_cube', {'base': {'name': 'gaussian', ...}}).

    Parsed with ast, never evaluated: only names, calls and literal values are accepted.
    """
    if re.fullmatch(NAME_PATTERN, text):
        return text, {}
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise UserError(f"{where}: {text!r} is neither a plugin name nor a call like name(arg=value).") from None
    reference = _call(node, kind, where, text)
    return reference["name"], reference["params"]


def _call(node: ast.AST, kind: Kind, where: str, text: str) -> dict[str, Any]:
    if isinstance(node, ast.Name):
        registry.get(kind, node.id, where)
        return {"name": node.id, "params": {}}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise UserError(f"{where}: cannot read {text!r}: expected name(arg, key=value, ...).")
    spec = registry.get(kind, node.func.id, where)
    fields = list(spec.params.model_fields)
    if len(node.args) > len(fields):
        raise UserError(f"{where}: {node.func.id} takes at most {len(fields)} positional arguments ({fields}).")
    params = {fields[i]: _value(arg, kind, where, text) for i, arg in enumerate(node.args)}
    params.update({kw.arg: _value(kw.value, kind, where, text) for kw in node.keywords if kw.arg})
    return {"name": node.func.id, "params": params}


def _value(node: ast.AST, kind: Kind, where: str, text: str) -> Any:
    if isinstance(node, ast.Call | ast.Name):
        return _call(node, kind, where, text)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise UserError(f"{where}: {ast.unparse(node)!r} in {text!r} is not a literal value.") from None
