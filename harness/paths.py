"""Where results go unless told otherwise (the store and the reports folder, relative to the working
folder), and the names that become folders there: a suite's name and a run's name."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import UserError, shorten

STORE_VARIABLE = "MI_HARNESS_STORE"
DEFAULT_STORE = "results/mi-harness.sqlite"
DEFAULT_REPORTS = "reports"
FOLDER_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # harness.api.NAME_PATTERN, anchored by fullmatch
MAX_NAME = 100  # a folder name on every file system, with room to spare


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one folder inside the reports folder, or None when it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; at most {MAX_NAME}"
    if not FOLDER_NAME.fullmatch(name):
        return "may hold only letters, digits, '_', '.' and '-' (no path separators, spaces or control characters)"
    if set(name) == {"."}:
        return "is dots only ('.' and '..' are this folder and the one above)"
    return None


def check_name(name: str, field: str) -> str:
    """`name` when it is one plain folder name; else a UserError naming `field` and what is valid."""
    problem = name_problem(name)
    if problem:
        raise UserError(f"{field} {shorten(name)} {problem}; give a plain name such as 'quickstart-2'.")
    return name


def inside(folder: str | Path, *parts: str) -> Path:
    """folder/parts..., checked to resolve strictly inside `folder` (so no name can lead elsewhere)."""
    joined = Path(folder).joinpath(*parts)
    root, target = Path(folder).resolve(), joined.resolve()
    if target == root or not target.is_relative_to(root):
        raise UserError(f"{shorten(str(joined))} would lie outside {shorten(str(folder))}; "
                        "suite and run names must be plain folder names.")
    return joined
