"""Runner and store: results land cell by cell, reruns resume, failures are results."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from harness import registry, runner
from harness.errors import UserError
from harness.executors import ProcessExecutor
from harness.store import Store
from harness.suite import load


@pytest.fixture
def toy(plugin_file):
    registry.load_plugin_file(plugin_file("toy"))
    yield
    registry.unregister(plugin_file("toy"))


def suite_file(tmp_path, estimator_params="{}", seeds="[0, 1, 2]", name="toy"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        [suite]
        name = "{name}"
        seeds = {seeds}
        [budget]
        samples = [4000]
        [[estimators]]
        name = "toy_correlation"
        params = {estimator_params}
        [[tasks]]
        name = "toy_gaussian"
        grid = {{ rho = [0.3, 0.8] }}
    """))
    return path


def test_results_match_ground_truth_and_are_stored(toy, tmp_path, store):
    summary = runner.run(load(suite_file(tmp_path)), store, show_progress=False)
    assert summary.statuses == {"ok": 6}
    cells = store.cells("toy")
    assert len(cells) == 6 and set(cells["status"]) == {"ok"}
    # the plug-in estimator's sd at n=4000 is below 0.02 nats at these correlations
    assert np.all(np.abs(cells["estimate"] - cells["true_value"]) < 0.08)


def test_rerun_skips_finished_cells(toy, tmp_path, store):
    suite = load(suite_file(tmp_path))
    runner.run(suite, store, show_progress=False)
    again = runner.run(suite, store, show_progress=False)
    assert again.skipped == 6 and sum(again.statuses.values()) == 0
    assert len(store.cells("toy")) == 6


def test_same_seed_same_numbers(toy, tmp_path):
    suite = load(suite_file(tmp_path))
    values = []
    for name in ("a", "b"):
        results = Store(tmp_path / f"{name}.sqlite")
        runner.run(suite, results, show_progress=False)
        values.append(results.cells("toy").sort_values("key")["estimate"].to_numpy())
    np.testing.assert_array_equal(values[0], values[1])


@pytest.mark.parametrize("behaviour, status, message", [
    ("raise", "failed", "RuntimeError: asked to fail"),
    ("nan", "nonfinite", "the estimate is nan"),
])
def test_a_failing_cell_is_recorded_and_the_suite_goes_on(toy, tmp_path, store, behaviour, status, message):
    path = tmp_path / "mixed.toml"
    path.write_text(textwrap.dedent(f"""
        [suite]
        name = "mixed"
        [[estimators]]
        name = "toy_correlation"
        grid = {{ behaviour = ["ok", "{behaviour}"] }}
        [[tasks]]
        name = "toy_gaussian"
    """))
    summary = runner.run(load(path), store, show_progress=False)
    assert summary.statuses == {"ok": 1, status: 1}
    bad = store.cells("mixed").query("status != 'ok'").iloc[0]
    assert bad["status"] == status and message in bad["error"]


def test_retry_failed_reruns_only_failures(toy, tmp_path, store):
    path = suite_file(tmp_path, estimator_params='{ behaviour = "raise" }', seeds="[0]")
    suite = load(path)
    runner.run(suite, store, show_progress=False)
    assert runner.run(suite, store, show_progress=False).skipped == 2
    assert runner.run(suite, store, retry_failed=True, show_progress=False).statuses == {"failed": 2}
    assert len(store.cells("toy")) == 2


def test_process_pool_gives_the_same_numbers(toy, tmp_path):
    suite = load(suite_file(tmp_path))
    inline, pooled = Store(tmp_path / "inline.sqlite"), Store(tmp_path / "pool.sqlite")
    runner.run(suite, inline, show_progress=False)
    runner.run(suite, pooled, executor=ProcessExecutor(2), show_progress=False)
    a = inline.cells("toy").set_index("key")["estimate"].sort_index()
    b = pooled.cells("toy").set_index("key")["estimate"].sort_index()
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_a_dying_worker_is_retried_then_failed(toy, tmp_path, store):
    path = tmp_path / "dying.toml"
    path.write_text(textwrap.dedent("""
        [suite]
        name = "dying"
        seeds = [0, 1]
        [[estimators]]
        name = "toy_correlation"
        grid = { behaviour = ["ok", "exit"] }
        [[tasks]]
        name = "toy_gaussian"
    """))
    summary = runner.run(load(path), store, executor=ProcessExecutor(2, retries=1), show_progress=False)
    cells = store.cells("dying")
    assert summary.statuses == {"ok": 2, "failed": 2} and len(cells) == 4
    died = cells.query("status == 'failed'")
    assert set(died["method_params"].map(lambda p: p["behaviour"])) == {"exit"}
    assert died["error"].str.contains("worker process died").all()


def test_sigkill_mid_suite_loses_nothing_and_rerun_completes(tmp_path, plugin_file):
    path = suite_file(tmp_path, estimator_params="{ sleep_s = 0.4 }", seeds="[0, 1, 2, 3, 4, 5]")
    db = tmp_path / "killed.sqlite"
    command = [sys.executable, "-m", "harness.cli", "--plugin-file", plugin_file("toy"), "run", str(path),
               "--store", str(db), "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    finished_before_kill = 0
    while time.time() < deadline:
        if db.exists():
            try:
                finished_before_kill = sqlite3.connect(db).execute("SELECT COUNT(*) FROM cells").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        if finished_before_kill >= 3:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    kept = {row[0]: row[1] for row in sqlite3.connect(db).execute("SELECT key, estimate FROM cells")}
    assert 3 <= len(kept) < 12
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = sqlite3.connect(db).execute("SELECT key, estimate FROM cells").fetchall()
    assert len(rows) == 12 and len({key for key, _ in rows}) == 12
    after = dict(rows)
    assert all(after[key] == value for key, value in kept.items())  # finished cells were not redone


def test_read_only_store_is_a_clear_error(toy, tmp_path):
    db = tmp_path / "ro.sqlite"
    Store(db).close()
    with pytest.raises(UserError, match="cannot be written"):
        runner.run(load(suite_file(tmp_path)), Store(db, read_only=True), show_progress=False)


def test_store_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot be written"):
        Store(tmp_path / "file" / "results.sqlite")


def test_locked_store_is_a_clear_error(toy, tmp_path):
    db = tmp_path / "locked.sqlite"
    Store(db).close()
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="locked by another process"):
            runner.run(load(suite_file(tmp_path)), Store(db, timeout=0.1), show_progress=False)
    finally:
        blocker.rollback()
