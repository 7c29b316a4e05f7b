"""Where real datasets live: MI_HARNESS_DATA_ROOT or --data-root. Loading never downloads; a plugin's
command may install the files (harness.download), and its loaders say which command when one is missing."""

import os
from pathlib import Path

from harness.errors import UserError

ENV_VAR = "MI_HARNESS_DATA_ROOT"


def root_from(value: str | None = None) -> Path:
    """The data root a command was given (`value`), else the environment's; it need not exist yet."""
    value = value or os.environ.get(ENV_VAR)
    if not value:
        raise UserError(
            f"no data root: set {ENV_VAR} (or pass --data-root) to the folder holding the real datasets "
            "in their published formats."
        )
    return Path(value).expanduser()


def data_root(install_hint: str = "") -> Path:
    root = root_from()
    if not root.is_dir():
        hint = f"; {install_hint}" if install_hint else ""
        raise UserError(f"data root {root} (from {ENV_VAR}) is not a folder{hint}.")
    return root


def dataset_path(*parts: str, install_hint: str = "") -> Path:
    """A path under the data root that must exist, with an error naming what is missing and, where the
    plugin knows one, how to install it (`install_hint`, e.g. "run: mi-harness data fetch NAME")."""
    root = data_root(install_hint)
    path = root.joinpath(*parts)
    if not path.exists():
        hint = f"; {install_hint}" if install_hint else ""
        raise UserError(f"missing data: {path} does not exist under the data root {root}{hint}.")
    return path
