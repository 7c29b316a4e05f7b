import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)
os.environ.setdefault("MI_HARNESS_DATA_ROOT", str(SHARED_DATA))
# the example plugin's own tests run from its folder, as its author would run them (test_testing_kit.py)
collect_ignore_glob = ["example_plugin/*", "broken_plugin/*"]


def pytest_configure(config):
    root = Path(os.environ["MI_HARNESS_DATA_ROOT"])
    if not root.is_dir():
        # CI must fail, not skip, when the real data is missing.
        raise pytest.UsageError(f"data root {root} is missing: set MI_HARNESS_DATA_ROOT to the shared data folder.")


@pytest.fixture
def plugin_file():
    """Path of a one-file test plugin in tests/plugin_files/."""
    return lambda name: str(REPO / "tests" / "plugin_files" / f"{name}.py")


def pip_installed(folder: Path, distribution: str):
    """A package pip-installed for the duration (its entry points visible to new processes), then removed.

    This process's registry is loaded first, so the package's plugins never leak into the other tests.
    """
    from harness import registry

    registry.plugin_manager()
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(folder)]
    subprocess.run(pip, check=True, capture_output=True)
    yield folder
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", distribution], check=True, capture_output=True)


@pytest.fixture(scope="module")
def example_plugin():
    """tests/example_plugin, a real third-party plugin package, installed for one module."""
    yield from pip_installed(REPO / "tests" / "example_plugin", "mi-harness-example-plugin")


@pytest.fixture(scope="module")
def broken_plugins():
    """tests/broken_plugin: plugins broken at import, at registration and by a misspelled hook, beside a
    working one (`fine`), installed for one module."""
    yield from pip_installed(REPO / "tests" / "broken_plugin", "mi-harness-broken-plugins")


@pytest.fixture
def store(tmp_path):
    from harness.store import Store

    results = Store(tmp_path / "results.sqlite")
    yield results
    results.close()


@pytest.fixture
def choose_cpu_gemm(monkeypatch):
    """Set MI_HARNESS_CPU_GEMM (None: unset) for this test; returns whether oneDNN is then chosen."""
    from plugins.estimators import cpu_gemm

    def choose(value: str | None) -> bool:
        if value is None:
            monkeypatch.delenv("MI_HARNESS_CPU_GEMM", raising=False)
        else:
            monkeypatch.setenv("MI_HARNESS_CPU_GEMM", value)
        cpu_gemm.onednn_chosen.cache_clear()
        return cpu_gemm.onednn_chosen()

    yield choose
    cpu_gemm.onednn_chosen.cache_clear()
