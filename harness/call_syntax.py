"""The suite files' call syntax: `half_cube(gaussian(dim=5, mi=1.0))` -> a name and its params.

Parsed with ast, never evaluated: only names, calls and literal values are accepted. A nested
call is a reference to another plugin of the same kind, {"name": ..., "params": {...}}.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from harness import registry
from harness.api import NAME_PATTERN, PluginKind, Spec
from harness.errors import UserError, shorten

MAX_TEXT = 10_000  # longer is not a reference someone wrote by hand
MAX_NAME = 100  # longer is no registered name: refused before a did-you-mean would echo it


def parse_reference(text: str, kind: PluginKind, where: str) -> tuple[str, dict[str, Any]]:
    """'half_cube(gaussian(dim=5, mi=1.0))' -> ('half_cube', {'base': {'name': 'gaussian', ...}})."""
    if len(text) > MAX_TEXT:
        raise UserError(f"{where}: a name or call of {len(text)} characters (starting {text[:40]!r}) is too long; "
                        f"at most {MAX_TEXT}.")
    if re.fullmatch(NAME_PATTERN, text):
        _registered(kind, text, where)
        return text, {}
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a NUL, or a too long integer
        raise UserError(f"{where}: {_shown(text)} is neither a plugin name nor a call like name(arg=value).") from None
    try:
        reference = _call(node, kind, where, text)
    except RecursionError:
        raise UserError(f"{where}: {_shown(text)} nests calls too deeply.") from None
    return reference["name"], reference["params"]


def _call(node: ast.AST, kind: PluginKind, where: str, text: str) -> dict[str, Any]:
    if isinstance(node, ast.Name):
        _registered(kind, node.id, where)
        return {"name": node.id, "params": {}}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise UserError(f"{where}: cannot read {_shown(text)}: expected name(arg, key=value, ...).")
    name = node.func.id
    spec = _registered(kind, name, where)
    fields = list(spec.params.model_fields)
    if any(isinstance(arg, ast.Starred) for arg in node.args) or any(kw.arg is None for kw in node.keywords):
        raise UserError(f"{where}: {_shown(text)} unpacks arguments with * or **; write each one as key=value.")
    if len(node.args) > len(fields):
        raise UserError(f"{where}: {name} takes at most {len(fields)} positional arguments ({', '.join(fields)}).")
    params = {fields[i]: _value(arg, kind, where, text) for i, arg in enumerate(node.args)}
    for keyword in node.keywords:
        if keyword.arg in params:
            raise UserError(f"{where}: {name} gets {keyword.arg!r} twice in {_shown(text)}; give it once.")
        params[keyword.arg] = _value(keyword.value, kind, where, text)
    return {"name": name, "params": params}


def _value(node: ast.AST, kind: PluginKind, where: str, text: str) -> Any:
    if isinstance(node, ast.Call | ast.Name):
        return _call(node, kind, where, text)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError):
        raise UserError(f"{where}: {_shown(ast.unparse(node))} in {_shown(text)} is not a literal value.") from None


def _registered(kind: PluginKind, name: str, where: str) -> Spec:
    if len(name) > MAX_NAME:
        raise UserError(f"{where}: {_shown(name)} is no registered {kind}: names have at most {MAX_NAME} characters.")
    return registry.get(kind, name, where)


def _shown(text: str, limit: int = 80) -> str:
    """The text quoted, or its start and its length when it is long."""
    return shorten(text, limit)
