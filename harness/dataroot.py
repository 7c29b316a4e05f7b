"""Where real datasets live: MI_HARNESS_DATA_ROOT or --data-root; nothing is downloaded."""

import os
from pathlib import Path

from harness.errors import UserError

ENV_VAR = "MI_HARNESS_DATA_ROOT"


def data_root() -> Path:
    value = os.environ.get(ENV_VAR)
    if not value:
        raise UserError(
            f"no data root: set {ENV_VAR} (or pass --data-root) to the folder holding "
            "planetoid/, tu/ and ucr/ in their published formats."
        )
    root = Path(value).expanduser()
    if not root.is_dir():
        raise UserError(f"data root {root} (from {ENV_VAR}) is not a folder.")
    return root


def dataset_path(*parts: str) -> Path:
    """A path under the data root that must exist, with an error naming what is missing."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise UserError(f"missing data: {path} does not exist under the data root {data_root()}.")
    return path
