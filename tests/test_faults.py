"""Faults: misbehaving plugins, diverging training, interrupted and killed runners, broken stores.

Each scenario ends with an audit of the store: every cell finished before a fault is still
there with the same numbers (none lost) and every cell appears once (none duplicated).
tests/test_runner.py covers SIGKILL of an inline runner, raise/NaN, dying workers and
locked or read-only stores; tests/test_ray.py the same guarantees on Ray.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness import registry, runner
from harness.errors import UserError
from harness.executors import InlineExecutor, ProcessExecutor
from harness.store import Store
from harness.suite import load


@pytest.fixture
def faulty(plugin_file):
    registry.load_plugin_file(plugin_file("faulty"))
    yield
    registry.unregister(plugin_file("faulty"))


def rows(db: Path) -> list[tuple[str, float | None, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT key, estimate, status FROM cells").fetchall()


def audit(db: Path, before: dict[str, float | None]) -> tuple[int, int]:
    """(finished cells lost or changed since `before`, cells stored more than once)."""
    after = rows(db)
    keys = [key for key, _, _ in after]
    values = {key: value for key, value, _ in after}
    lost = sum(1 for key, value in before.items() if key not in values or values[key] != value)
    return lost, len(keys) - len(set(keys))


def write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


MIXED = """
    [suite]
    name = "mixed"
    seeds = [0, 1]
    [budget]
    samples = [500]
    [[estimators]]
    name = "faulty"
    grid = { behaviour = ["ok", "inf", "-inf", "none"] }
    [[tasks]]
    name = "faulty_gaussian"
    grid = { behaviour = ["ok", "raise", "nan_samples"] }
"""
HEALTHY = """
    [suite]
    name = "mixed"
    seeds = [0, 1]
    [budget]
    samples = [500]
    [[estimators]]
    name = "faulty"
    params = { behaviour = "ok" }
    [[tasks]]
    name = "faulty_gaussian"
    params = { behaviour = "ok" }
"""


@pytest.mark.parametrize("executor", [InlineExecutor(), ProcessExecutor(2)], ids=["inline", "pool"])
def test_misbehaving_plugins_are_recorded_and_the_healthy_cells_untouched(faulty, tmp_path, executor):
    store = Store(tmp_path / "mixed.sqlite")
    summary = runner.run(load(write(tmp_path / "mixed.toml", MIXED)), store, executor=executor, show_progress=False)
    cells = store.cells("mixed")
    assert len(cells) == 24 and cells["key"].is_unique
    outcome = {(c["method_params"]["behaviour"], c["data_params"]["behaviour"]): (c["status"], c["error"])
               for _, c in cells.iterrows()}
    assert outcome[("ok", "raise")] == ("failed", outcome[("ok", "raise")][1])
    assert "ValueError: the sampler was asked to fail" in outcome[("ok", "raise")][1]
    assert outcome[("inf", "ok")] == ("nonfinite", "the estimate is inf")
    assert outcome[("-inf", "ok")] == ("nonfinite", "the estimate is -inf")
    assert outcome[("none", "ok")][0] == "failed" and "TypeError" in outcome[("none", "ok")][1]
    # a task's NaN samples fail the cell before any fit, naming the task (not "the estimate is nan")
    assert outcome[("ok", "nan_samples")][0] == "failed"
    assert "task 'faulty_gaussian' sampled 72 non-finite value(s) (NaN or inf) in x" in outcome[("ok", "nan_samples")][1]
    assert summary.statuses["ok"] == 2  # only healthy estimator x healthy task, two seeds
    # The healthy cells hold exactly what a run without any faulty neighbour gives.
    alone = Store(tmp_path / "alone.sqlite")
    runner.run(load(write(tmp_path / "healthy.toml", HEALTHY)), alone, show_progress=False)
    expected = alone.cells("mixed").set_index("key")["estimate"]
    got = cells.set_index("key").loc[expected.index, "estimate"]
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_a_diverging_critic_is_recorded_failed_with_its_message(tmp_path, store):
    # NWJ's exp(T - 1) overflows within a few Adam steps at lr = 1e6; lr = 5e-4 is the paper's setting.
    suite = load(write(tmp_path / "diverging.toml", """
        [suite]
        name = "diverging"
        [budget]
        samples = [1024]
        steps = 40
        batch_size = 32
        [[estimators]]
        name = "nwj"
        params = { hidden = 16, embed_dim = 8 }
        grid = { lr = [5e-4, 1e6] }
        [[tasks]]
        name = "gaussian"
        params = { dim = 2, mi = 0.5 }
    """))
    summary = runner.run(suite, store, show_progress=False)
    assert summary.statuses == {"ok": 1, "failed": 1}
    cells = store.cells("diverging").set_index(store.cells("diverging")["method_params"].map(lambda p: p["lr"]))
    assert "FloatingPointError: the bound became non-finite" in cells.loc[1e6, "error"]
    assert cells.loc[1e6, "estimate"] is None or np.isnan(cells.loc[1e6, "estimate"])
    assert np.isfinite(cells.loc[5e-4, "estimate"]) and cells.loc[5e-4, "status"] == "ok"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_rows(db: Path, at_least: int, process: subprocess.Popen, timeout: float = 90) -> int:
    count, deadline = 0, time.time() + timeout
    while count < at_least and time.time() < deadline and process.poll() is None:
        try:
            count = len(rows(db))
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    return count


def test_interrupt_then_kill_then_resume_under_a_process_pool(tmp_path, plugin_file):
    suite = write(tmp_path / "slow.toml", """
        [suite]
        name = "slow"
        seeds = [0, 1, 2, 3, 4, 5, 6, 7]
        [budget]
        samples = [500]
        [[estimators]]
        name = "toy_correlation"
        params = { sleep_s = 0.3 }
        [[tasks]]
        name = "toy_gaussian"
        grid = { rho = [0.2, 0.7] }
    """)
    db = tmp_path / "slow.sqlite"
    command = [sys.executable, "-m", "harness.cli", "--plugin-file", plugin_file("toy"), "run", str(suite),
               "--store", str(db), "--no-report"]
    pooled = [*command, "--jobs", "2"]

    # 1. Ctrl-C: exit 130, the finished cells stay.
    first = subprocess.Popen(pooled, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_rows(db, 2, first) >= 2
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130 and "interrupted" in out and "Traceback" not in out + err
    kept = {key: value for key, value, _ in rows(db)}
    assert 2 <= len(kept) < 16 and audit(db, kept) == (0, 0)

    # 2. SIGKILL of the runner while its workers compute: nothing finished is lost, no worker lingers.
    second = subprocess.Popen(pooled, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for_rows(db, len(kept) + 2, second) >= len(kept) + 2
    workers = children_of(second.pid)
    second.kill()
    second.wait()
    deadline = time.time() + 30
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    lingering = [pid for pid in workers if alive(pid)]
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    assert not lingering, "pool workers outlived their killed runner"
    survived = {key: value for key, value, _ in rows(db)}
    assert len(survived) < 16 and audit(db, kept) == (0, 0)

    # 3. The rerun completes the suite: all 16 cells, each once, earlier numbers unchanged.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    assert len(rows(db)) == 16 and audit(db, survived) == (0, 0)
    assert {status for _, _, status in rows(db)} == {"ok"}


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_text("run,estimate\nx,1.0\n" * 200)  # e.g. a CSV export saved under the store's name
    with pytest.raises(UserError, match="is not a usable SQLite database"):
        Store(path)

