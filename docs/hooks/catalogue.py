"""MkDocs hook: the catalogue page is rendered from the registry at build time, so it cannot drift.

docs/catalogue.md holds the page's introduction and one marker line; the marker is replaced by
`harness.catalogue.markdown()`, the same catalogue `mi-harness list` prints. Only the built-in
plugins are listed: MI_HARNESS_LOAD_PLUGINS="" leaves out whatever third-party plugins happen to
be installed where the site is built.
"""

from __future__ import annotations

import os

MARKER = "<!-- catalogue: harness.catalogue.markdown() is inserted here at build time -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != "catalogue.md":
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/catalogue.md has lost its marker line {MARKER!r}")
    os.environ["MI_HARNESS_LOAD_PLUGINS"] = ""
    from harness import catalogue

    return markdown.replace(MARKER, catalogue.markdown())
