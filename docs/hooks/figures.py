"""MkDocs hook: the reference-report figures the pages embed are taken from reports/ at build time.

MkDocs serves only files under docs/, and a copy committed there would drift from the report it
came from; so each figure is added to the site from its report when the site is built. A page
embeds it by its site path, e.g. `![...](figures/staircase-trajectories.png)` from docs/results.md.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPOSITORY = Path(__file__).resolve().parents[2]
FIGURES = {  # site path -> the committed report figure it is
    "figures/staircase-trajectories.png": "reports/staircase/staircase/trajectories.png",
}


def on_files(files, config):
    for site_path, source in FIGURES.items():
        path = REPOSITORY / source
        if not path.is_file():
            raise FileNotFoundError(f"{source} (embedded in the docs as {site_path}) is missing")
        files.append(File.generated(config, site_path, abs_src_path=str(path)))
    return files
