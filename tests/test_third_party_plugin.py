"""A real third-party package, pip-installed, discovered through its entry point."""

import os
import subprocess
import sys
import textwrap


def mi_harness(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_installed_plugin_is_listed_with_its_version(example_plugin):
    listing = mi_harness("list", "estimators").stdout
    assert "example_copula" in listing and "Gaussian-copula MI" in listing
    plugins = mi_harness("list", "plugins").stdout
    assert "example" in plugins and "0.3.1" in plugins


def test_load_plugins_variable_limits_what_loads(example_plugin):
    assert "example_copula" not in mi_harness("list", "estimators", env={"MI_HARNESS_LOAD_PLUGINS": ""}).stdout
    assert "example_copula" in mi_harness("list", "estimators", env={"MI_HARNESS_LOAD_PLUGINS": "example"}).stdout


def test_installed_plugin_runs_inside_a_suite(example_plugin, tmp_path):
    suite = tmp_path / "third_party.toml"
    suite.write_text(textwrap.dedent("""
        [suite]
        name = "third_party"
        seeds = [0, 1]
        [budget]
        samples = [5000]
        [[estimators]]
        name = "example_copula"
        [[tasks]]
        name = "gaussian"
        params = { dim = 3, mi = 1.0 }
    """))
    result = mi_harness("run", str(suite), "--store", str(tmp_path / "r.sqlite"), "--jobs", "2",
                        "--reports-dir", str(tmp_path / "reports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 ok" in result.stdout
    rows = (tmp_path / "reports" / "third_party" / "third_party" / "results.csv").read_text().splitlines()
    header, *cells = rows
    estimates = [float(line.split(",")[header.split(",").index("estimate")]) for line in cells]
    # the copula estimator is exact for Gaussians up to sampling error (sd ~ 0.02 nats here)
    assert all(abs(value - 1.0) < 0.1 for value in estimates)
