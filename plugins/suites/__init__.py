"""The built-in suite files in the repository's suites/ folder, registered by name."""

import tomllib
from pathlib import Path

from harness import SuiteSpec, hookimpl

SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"


@hookimpl
def register_suites(register):
    """Each suites/*.toml under its [suite] name, with its description as the summary."""
    for path in sorted(SUITES_DIR.glob("*.toml")):
        header = tomllib.loads(path.read_text()).get("suite", {})
        register(SuiteSpec(name=header.get("name", path.stem), summary=header.get("description", ""),
                           path=str(path)))
