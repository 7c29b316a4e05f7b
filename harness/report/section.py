"""One part of the report's page, written once for both the markdown and the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd


class Section(NamedTuple):
    """A heading with what it shows, in this order: a table, a figure (embedded in the HTML page), links to
    figures beside the page (label, path), and a caption (or, without a figure, a note). Level 3 is a part
    of the level-2 section before it, left out of the table of contents."""

    heading: str
    table: pd.DataFrame | None = None
    caption: str | None = None
    image: Path | None = None
    level: int = 2
    links: tuple[tuple[str, Path], ...] = ()
