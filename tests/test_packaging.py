"""The wheel carries everything a run needs, the built-in suites included, and nothing of the repository's own.

The wheel is built (through the sdist, as `python -m build` does) from a copy of the working tree and read
with zipfile; installing it into a fresh environment and running the quickstart is .ci/run's job.
"""

import configparser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from harness import registry

REPO = Path(__file__).resolve().parents[1]
LEFT_BEHIND = (".git", "build", "dist", "*.egg-info", "__pycache__", "results", ".venv", ".tox", ".pytest_cache",
               ".ruff_cache", ".benchmarks")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist and the wheel of the working tree, built without touching it."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("mi_harness-*.whl")
    (sdist,) = (root / "dist").glob("mi_harness-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def wheel_names(dist):
    with zipfile.ZipFile(dist[0]) as wheel:
        return set(wheel.namelist())


def dist_info(names: set[str]) -> str:
    (folder,) = {name.split("/", 1)[0] for name in names if name.endswith(".dist-info/entry_points.txt")}
    return folder


def test_wheel_carries_every_module_of_the_core_and_the_builtins(wheel_names):
    modules = {path.relative_to(REPO).as_posix() for top in ("harness", "plugins") for path in (REPO / top).rglob("*.py")
               if "__pycache__" not in path.parts}
    missing = sorted(modules - wheel_names)
    assert not missing, f"not in the wheel (add their package to [tool.setuptools] packages): {missing}"


def test_wheel_carries_the_builtin_suites_inside_the_package(dist, wheel_names):
    suites = sorted((REPO / "suites").glob("*.toml"))
    assert suites
    with zipfile.ZipFile(dist[0]) as wheel:
        for path in suites:
            assert wheel.read(f"plugins/suites/files/{path.name}") == path.read_bytes(), path.name


def test_wheel_holds_no_tests_reports_or_other_top_level_folders(wheel_names):
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert tops - {"harness", "plugins"} == {dist_info(wheel_names)}, tops


def test_wheel_declares_the_console_script_and_the_pytest_plugin(dist, wheel_names):
    with zipfile.ZipFile(dist[0]) as wheel:
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(f"{dist_info(wheel_names)}/entry_points.txt").decode())
    assert entry_points["console_scripts"]["mi-harness"] == "harness.cli:main"
    assert entry_points["pytest11"]["mi_harness"] == "harness.testing"


def test_sdist_holds_the_suites_folder_the_wheel_is_built_from(dist):
    with tarfile.open(dist[1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md"} <= names
    assert {f"suites/{path.name}" for path in (REPO / "suites").glob("*.toml")} <= names


def test_unpacked_wheel_registers_the_suites_of_its_own_package(dist, tmp_path):
    with zipfile.ZipFile(dist[0]) as wheel:
        wheel.extractall(tmp_path / "site")
    code = ("from harness import registry\n"
            "print(*sorted(spec.path for spec in registry.specs('suite').values()), sep='\\n')")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin",
                                "MI_HARNESS_LOAD_PLUGINS": ""})
    assert shown.returncode == 0, shown.stderr
    paths = shown.stdout.split()
    assert len(paths) == len(list((REPO / "suites").glob("*.toml")))
    assert all(path.startswith(str(tmp_path / "site" / "plugins" / "suites" / "files") + "/") for path in paths), paths


def test_a_checkout_registers_the_repository_suites_folder():
    paths = [Path(spec.path) for spec in registry.plugin_specs("plugins.suites")["suite"].values()]
    assert paths and all(path.parent == REPO / "suites" for path in paths), paths
