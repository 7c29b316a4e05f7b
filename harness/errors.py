"""Errors caused by what a user wrote: the CLI prints them as one message, never a traceback."""

from __future__ import annotations

import difflib
import traceback
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class UserError(ValueError):
    """A mistake in input (a name, a file, a field) with a sentence saying what would be valid."""


def unknown_name(kind: str, name: str, valid: list[str], where: str = "") -> UserError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    place = f"{where}: " if where else ""
    listing = ", ".join(sorted(valid)) or "(none installed)"
    return UserError(f"{place}unknown {kind} {name!r}.{hint} Valid {kind}s: {listing}.")


def describe_validation_error(path: Path | str, error: ValidationError, prefix: str = "",
                              model: type[BaseModel] | None = None) -> str:
    lines = []
    for problem in error.errors():
        where = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".")
        got = problem.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {shorten(got)})"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden" and problem["loc"]:
            valid = fields_at(model, problem["loc"][:-1])
            message, shown = unknown_key(str(problem["loc"][-1]), valid, listed=not prefix), ""
        lines.append(f"{path}: {where or 'top level'}: {message}{shown}")
    return "\n".join(lines)


def shorten(value: Any, limit: int = 80) -> str:
    """The value's repr, or its start and its length when it is long (a 10 MB name is never echoed whole)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def unknown_key(key: str, valid: list[str] | None, listed: bool = True) -> str:
    if not valid:
        return f"Extra inputs are not permitted: unknown key {key!r}"
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = f" Valid keys here: {', '.join(valid)}" if listed else ""
    return f"Extra inputs are not permitted: unknown key {key!r}.{hint}{listing}"


def fields_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str] | None:
    """The field names of the (nested) model that a validation error's location points into."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, str):
            info = model.model_fields.get(part)
            model = _model_in(info.annotation) if info else None
    return list(model.model_fields) if model else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        if found := _model_in(argument):
            return found
    return None


def describe_exception(error: BaseException) -> str:
    """'ImportError: No module named x (at plugin.py:3)': the error and the innermost frame, on one line."""
    text = " ".join(str(error).split()) or "(no message)"
    if len(text) > 300:
        text = f"{text[:300]}... ({len(text)} characters)"
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if not frame.filename.startswith("<")]
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f" (at {error.filename.rsplit('/', 1)[-1]}:{error.lineno})"
    return f"{type(error).__name__}: {text}{where}"
