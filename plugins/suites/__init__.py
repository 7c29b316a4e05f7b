"""The built-in suite files, registered by name.

Their one home is the repository's suites/ folder. The wheel carries them inside this package, as
files/ beside this module (pyproject.toml maps suites/ there), so an installed harness registers the
files of its own package, and a checkout (an editable install, or the source on PYTHONPATH) those of
the repository.
"""

import tomllib
from pathlib import Path

from harness import SuiteSpec, hookimpl

PACKAGED_DIR = Path(__file__).resolve().parent / "files"
SUITES_DIR = PACKAGED_DIR if PACKAGED_DIR.is_dir() else Path(__file__).resolve().parents[2] / "suites"


@hookimpl
def register_suites(register):
    """Each suite file under its [suite] name, with its description as the summary."""
    for path in sorted(SUITES_DIR.glob("*.toml")):
        header = tomllib.loads(path.read_text()).get("suite", {})
        register(SuiteSpec(name=header.get("name", path.stem), summary=header.get("description", ""),
                           path=str(path)))
