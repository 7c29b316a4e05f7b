"""The command line as a user meets it: listing, running, reporting, exporting, mistakes."""

import csv
import os
import subprocess
import sys
import textwrap

import pytest


def mi_harness(*args, cwd=None, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                            cwd=cwd, env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def test_list_shows_names_summaries_and_defaults():
    out = mi_harness("list", "estimators").stdout
    assert "infonce" in out and "capped at log B" in out and "hidden=64" in out


def test_list_plugins_shows_versions_and_hooks():
    out = mi_harness("list", "plugins", env={**os.environ, "COLUMNS": "200"}).stdout
    assert "plugins.estimators.variational" in out and "register_estimators" in out and "0.1.0" in out


@pytest.fixture
def tiny_suite(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent("""
        [suite]
        name = "tiny"
        seeds = [0, 1]
        [budget]
        samples = [1024]
        steps = 40
        [[estimators]]
        name = "infonce"
        params = { hidden = 16, embed_dim = 8 }
        [[estimators]]
        name = "gaussian_cca"
        [[tasks]]
        name = "gaussian"
        grid = { mi = [0.5, 1.0] }
        params = { dim = 2 }
    """))
    return path


def test_run_report_and_export(tmp_path, tiny_suite):
    store = str(tmp_path / "r.sqlite")
    out = mi_harness("run", str(tiny_suite), "--store", store, "--reports-dir", str(tmp_path / "reports")).stdout
    assert "8 ok" in out
    report = tmp_path / "reports" / "tiny" / "tiny"
    for name in ("index.html", "index.md", "results.csv", "trajectories.png"):
        assert (report / name).is_file(), name
    assert "data:image/png;base64," in (report / "index.html").read_text()
    exported = tmp_path / "cells.csv"
    mi_harness("export", "tiny", "--store", store, "--format", "csv", "-o", str(exported))
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 8
    for column in ("suite", "cell", "estimator", "params", "task", "seed", "n", "true_value", "estimate",
                   "status", "error", "wall_s", "steps", "device"):
        assert column in rows[0], column
    again = mi_harness("run", str(tiny_suite), "--store", store, "--no-report").stdout
    assert "8 already in the store" in again


@pytest.mark.parametrize("args, message", [
    (["run", "no_such_suite"], "unknown suite 'no_such_suite'"),
    (["report", "nope", "--store", "/nonexistent/r.sqlite"], "no results store at"),
    (["run", "quickstart", "--device", "cuda:7", "--store", "/tmp/x.sqlite"], "device 'cuda:7'"),
])
def test_user_mistakes_get_one_clear_line_and_no_traceback(args, message):
    result = mi_harness(*args, check=False)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_run_lists_known_runs(tmp_path, tiny_suite):
    store = str(tmp_path / "r.sqlite")
    mi_harness("run", str(tiny_suite), "--store", store, "--no-report")
    result = mi_harness("report", "tiny2", "--store", store, check=False)
    assert result.returncode == 2 and "no run 'tiny2'" in result.stdout and "tiny" in result.stdout
