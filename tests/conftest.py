import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)
os.environ.setdefault("MI_HARNESS_DATA_ROOT", str(SHARED_DATA))


def pytest_configure(config):
    root = Path(os.environ["MI_HARNESS_DATA_ROOT"])
    if not root.is_dir():
        # CI must fail, not skip, when the real data is missing.
        raise pytest.UsageError(f"data root {root} is missing: set MI_HARNESS_DATA_ROOT to the shared data folder.")


@pytest.fixture
def plugin_file():
    """Path of a one-file test plugin in tests/plugin_files/."""
    return lambda name: str(REPO / "tests" / "plugin_files" / f"{name}.py")


@pytest.fixture
def store(tmp_path):
    from harness.store import Store

    results = Store(tmp_path / "results.sqlite")
    yield results
    results.close()


@pytest.fixture
def choose_cpu_gemm(monkeypatch):
    """Set MI_HARNESS_CPU_GEMM (None: unset) for this test; returns whether oneDNN is then chosen."""
    from harness import cpu_gemm

    def choose(value: str | None) -> bool:
        if value is None:
            monkeypatch.delenv("MI_HARNESS_CPU_GEMM", raising=False)
        else:
            monkeypatch.setenv("MI_HARNESS_CPU_GEMM", value)
        cpu_gemm.onednn_chosen.cache_clear()
        return cpu_gemm.onednn_chosen()

    yield choose
    cpu_gemm.onednn_chosen.cache_clear()
