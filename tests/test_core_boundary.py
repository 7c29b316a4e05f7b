"""The core knows no method: harness/ imports nothing from plugins/ but the tuple of built-ins, and its
code names no registered estimator, task, encoder or dataset.

Code is what is checked: imports, string constants (keys, defaults, labels, lazy "module:attr"
paths) and identifiers, compared case-insensitively. Docstrings are prose and may cite the paper a
protocol comes from ("InfoGraph's protocol"); comments never reach the AST.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from harness import DatasetSpec, Embeddings, EncoderSpec, Params, downstream, hookimpl, registry
from harness.api import Budget
from harness.cells import Cell, execute

HARNESS = Path(__file__).resolve().parents[1] / "harness"
MODULES = sorted(HARNESS.rglob("*.py"))
METHOD_KINDS = ("estimator", "task", "encoder", "dataset")
# Registered names that are also ordinary words of the core's own code; only their identifiers are
# let through (torch's `dim=`, a `raw` value before parsing): a string "dim" or "raw" still fails.
ORDINARY_IDENTIFIERS = {"dim", "raw"}
PLUGIN_PATH = re.compile(r"plugins[.:]\w")


@pytest.fixture(scope="module")
def method_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for kind in METHOD_KINDS:
        for name in registry.specs(kind):
            names.setdefault(name.casefold(), f"{kind} {name!r}")
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, owners) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)}


def _builtin_entries(tree: ast.AST) -> list[ast.Constant]:
    """The string entries of `BUILTIN_PLUGINS = (...)`: the one place the core names plugin modules."""
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "BUILTIN_PLUGINS" and isinstance(node.value, ast.Tuple):
            return [element for element in node.value.elts if isinstance(element, ast.Constant)]
    return []


def _identifiers(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.asname or node.name.rpartition(".")[2]]
    return []


def violations(source: str, where: str, names: dict[str, str]) -> list[str]:
    """One line per offence: `where:line: what it names`."""
    tree = ast.parse(source, filename=where)
    skipped = _docstrings(tree)
    if where == "harness/registry.py":
        skipped |= {id(entry) for entry in _builtin_entries(tree)}
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}:{line}: imports {module} (the core reaches plugins only through BUILTIN_PLUGINS)"
                      for module in modules if module == "plugins" or module.startswith("plugins.")]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            if node.value.casefold() in names:
                found.append(f"{where}:{line}: names the {names[node.value.casefold()]} (string {node.value!r})")
            elif PLUGIN_PATH.match(node.value):
                found.append(f"{where}:{line}: names the plugin module {node.value!r} outside BUILTIN_PLUGINS")
        for identifier in _identifiers(node):
            if identifier.casefold() in names and identifier.casefold() not in ORDINARY_IDENTIFIERS:
                found.append(f"{where}:{line}: names the {names[identifier.casefold()]} (identifier {identifier})")
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.relative_to(HARNESS).as_posix())
def test_the_core_imports_no_plugin_and_names_no_method(module, method_names):
    found = violations(module.read_text(), module.relative_to(HARNESS.parent).as_posix(), method_names)
    assert not found, "the core must not know a method; move this into its plugin:\n" + "\n".join(found)


def test_the_only_plugin_modules_the_core_names_are_the_builtin_tuple():
    entries = _builtin_entries(ast.parse((HARNESS / "registry.py").read_text()))
    assert tuple(entry.value for entry in entries) == registry.BUILTIN_PLUGINS
    assert all(name.startswith("plugins.") for name in registry.BUILTIN_PLUGINS)


def test_the_guard_sees_an_import_a_lazy_path_and_a_method_name(method_names):
    source = ('"""Docstrings may say infonce."""\nfrom plugins.estimators import bounds\n'
              'BUILD = "plugins.estimators.critics:mlp"\nDEFAULT = {"estimator": "InfoNCE"}\n'
              'def fit(dim, ksg=None):\n    return dim\n')
    found = sorted(violations(source, "harness/probe.py", method_names))
    assert [message.split(": ", 1)[0] for message in found] == [f"harness/probe.py:{line}" for line in (2, 3, 4, 5)]
    assert "estimator 'infonce' (string 'InfoNCE')" in found[2] and "estimator 'ksg' (identifier ksg)" in found[3]


class _Probe(Params):
    baseline: bool = False  # no `random_init`: the core must not read a parameter's name


class _ProbeEncoder:
    def __init__(self, params: _Probe):
        self.params = params

    def fit(self, dataset, budget, device, seed) -> Embeddings:
        return Embeddings(features=np.zeros((4, 2)), untrained_baseline=self.params.baseline)


@dataclass
class _ProbeData:
    kind: str = "images"
    inputs: np.ndarray = field(default_factory=lambda: np.zeros((4, 2), dtype=np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.array([0, 1, 0, 1]))
    splits: dict = field(default_factory=dict)
    evaluation: str = "logistic_fixed_split"


class _ProbePlugin:
    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="boundary_probe_encoder", summary="", params=_Probe, build=_ProbeEncoder,
                             published={"boundary_probe_data": (90.0, 1.0)}))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec(name="boundary_probe_data", summary="", build=lambda params: _ProbeData()))


@pytest.mark.parametrize("baseline", [False, True])
def test_an_untrained_baseline_is_said_by_its_embeddings_not_by_a_parameter_name(baseline, monkeypatch):
    monkeypatch.setattr(downstream, "evaluate", lambda dataset, embeddings, seed, selection: ({"accuracy": 50.0}, {}))
    registry.register(_ProbePlugin(), name="boundary-probe")
    try:
        result = execute(Cell(
            suite="probe", study="representation", method="boundary_probe_encoder",
            method_params={"baseline": baseline}, data="boundary_probe_data", data_params={}, seed=0, n=4,
            budget=Budget(epochs=1), device="cpu", method_label="probe", data_label="probe"))
    finally:
        registry.unregister("boundary-probe")
    assert result.status == "ok", result.error
    assert result.true_value == (None if baseline else 90.0)
