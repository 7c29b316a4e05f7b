"""The Ray executor against real Ray: a head node these tests start, and a private local instance.

Ray's token authentication is on: each cluster gets a fresh token through RAY_AUTH_TOKEN, so
nothing is written to ~/.ray. Every Ray process is ended through the process that started it.
"""

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness import grouping, registry, runner
from harness.api import Budget
from harness.cells import Cell
from harness.errors import UserError
from harness.executors import InlineExecutor
from harness.store import Store
from harness.suite import load

RAY_BIN = Path(sys.executable).parent / "ray"


def require_ray():
    if importlib.util.find_spec("ray") is None:
        pytest.fail("Ray is not installed; the test environment needs the extra: pip install -e '.[test,ray]'")


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains text (a Ray temp folder is unique to one cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def auth_env():
    """Token authentication as Ray requires it, with a token of this test run only."""
    require_ray()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # Ray reads the mode once per process; make it see the variables just set
    AuthenticationTokenLoader.instance().reset_cache()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def cluster(auth_env):
    """A head node started with `ray start --block`; SIGTERM to that one process stops all of it."""
    import ray

    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="mih-ray-test-", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
         "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            break
        except ConnectionError:
            if time.time() > deadline or head.poll() is not None:
                head.kill()
                raise
            time.sleep(0.5)
    yield address
    ray.shutdown()
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=60)
    finally:
        leftovers = processes_mentioning(temp_dir)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)
    assert not leftovers, "the head node left processes behind"


@pytest.fixture
def plugins(plugin_file):
    for name in ("toy", "faulty"):
        registry.load_plugin_file(plugin_file(name))
    yield
    for name in ("toy", "faulty"):
        registry.unregister(plugin_file(name))


def write_suite(tmp_path, name, estimator, task, seeds="[0, 1, 2]"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        [suite]
        name = "{name}"
        seeds = {seeds}
        [budget]
        samples = [2000]
        [[estimators]]
        {estimator}
        [[tasks]]
        {task}
    """))
    return path


def test_missing_ray_names_the_extra_to_install(monkeypatch, plugins):
    from harness.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    cell = Cell("s", "estimation", "toy_correlation", {}, "toy_gaussian", {}, 0, 100, Budget(), "cpu", "a", "b")
    with pytest.raises(UserError, match=r"pip install 'mi-harness\[ray\]'"):
        next(RayExecutor().map(lambda unit: [], [[cell]]))


def test_ctrl_c_cancels_keeps_finished_cells_and_stops_the_local_instance(auth_env, tmp_path, plugin_file):
    suite = write_suite(tmp_path, "sleepy", 'name = "toy_correlation"\nparams = { sleep_s = 0.6 }',
                        'name = "toy_gaussian"', seeds="[0, 1, 2, 3, 4, 5, 6, 7]")
    db = tmp_path / "sleepy.sqlite"
    short_tmp = tempfile.mkdtemp(prefix="mih-t-", dir="/tmp")  # the executor makes its Ray folder here
    command = [sys.executable, "-m", "harness.cli", "--plugin-file", plugin_file("toy"), "run", str(suite),
               "--store", str(db), "--no-report"]
    driver = subprocess.Popen([*command, "--executor", "ray", "--jobs", "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": short_tmp})
    finished, deadline = 0, time.time() + 120
    while finished < 2 and time.time() < deadline and driver.poll() is None:
        try:
            finished = sqlite3.connect(db).execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    ray_processes = processes_mentioning(short_tmp)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=60)
    assert ray_processes, "the executor should have started Ray under TMPDIR"
    assert driver.returncode == 130, out + err
    assert "interrupted" in out and "Traceback" not in out + err
    kept = dict(sqlite3.connect(db).execute("SELECT key, estimate FROM cells").fetchall())
    assert 2 <= len(kept) < 8
    time.sleep(1)
    assert not processes_mentioning(short_tmp), "Ray processes outlived the interrupted run"
    # The rerun (inline here) finishes the rest; each cell lands once and kept cells are not redone.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = sqlite3.connect(db).execute("SELECT key, estimate FROM cells").fetchall()
    assert len(rows) == 8 and len({key for key, _ in rows}) == 8
    assert all(dict(rows)[key] == value for key, value in kept.items())
    shutil.rmtree(short_tmp)


def test_ray_gives_the_same_numbers_as_inline(cluster, plugins, tmp_path):
    from harness.ray_executor import RayExecutor

    suite = load(write_suite(tmp_path, "same", 'name = "toy_correlation"',
                             'name = "toy_gaussian"\ngrid = { rho = [0.3, 0.8] }'))
    inline, on_ray = Store(tmp_path / "inline.sqlite"), Store(tmp_path / "ray.sqlite")
    runner.run(suite, inline, executor=InlineExecutor(), show_progress=False)
    summary = runner.run(suite, on_ray, executor=RayExecutor(address=cluster), show_progress=False)
    assert summary.statuses == {"ok": 6}
    a = inline.cells("same").set_index("key").sort_index()
    b = on_ray.cells("same").set_index("key").sort_index()
    np.testing.assert_array_equal(a["estimate"].to_numpy(), b["estimate"].to_numpy())
    assert list(a["trajectory"]) == list(b["trajectory"])
    # The same seam carries units of cells (harness.grouping): each unit is one task.
    pairs = grouping.map_cells(RayExecutor(address=cluster), suite.cells)
    assert {cell.key: result.estimate for cell, result in pairs} == a["estimate"].to_dict()


def test_a_dying_ray_worker_is_retried_then_recorded_failed(cluster, plugins, tmp_path):
    from harness.ray_executor import RayExecutor

    attempts = tmp_path / "attempts.log"
    suite = load(write_suite(
        tmp_path, "dying", f'name = "faulty"\ngrid = {{ behaviour = ["ok", "exit"] }}\n'
                           f'params = {{ attempts_log = "{attempts}" }}',
        'name = "faulty_gaussian"', seeds="[0]"))
    store = Store(tmp_path / "dying.sqlite")
    summary = runner.run(suite, store, executor=RayExecutor(address=cluster, retries=1), show_progress=False)
    assert summary.statuses == {"ok": 1, "failed": 1}
    cells = store.cells("dying")
    cells.index = cells["method_params"].map(lambda p: p["behaviour"])
    died = cells.loc["exit"]
    assert "worker process died" in died["error"] and "2 attempts" in died["error"]
    assert len(attempts.read_text().split()) == 2  # the first try and one retry, each in its own process
    assert np.isfinite(cells.loc["ok"]["estimate"])


def test_a_cuda_suite_on_a_cluster_without_gpus_is_a_clear_error(cluster, plugins):
    from harness.ray_executor import RayExecutor

    cell = Cell("s", "estimation", "faulty", {}, "faulty_gaussian", {}, 0, 100, Budget(), "cuda", "a", "b")
    with pytest.raises(UserError, match="has no GPUs"):
        next(RayExecutor(address=cluster).map(lambda unit: [], [[cell]]))


def test_cli_joins_a_cluster_by_address_and_only_the_driver_writes(cluster, tmp_path, plugin_file):
    suite = write_suite(tmp_path, "probe", 'name = "faulty"\nparams = { behaviour = "probe" }',
                        'name = "faulty_gaussian"\ngrid = { rho = [0.2, 0.6] }')
    db = tmp_path / "probe.sqlite"
    driver = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "--plugin-file", plugin_file("faulty"), "run", str(suite),
         "--store", str(db), "--no-report", "--executor", "ray", "--address", cluster],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, out + err
    assert "6 ok" in out
    cells = Store(db, read_only=True).cells("probe")
    assert len(cells) == 6 and cells["key"].is_unique
    workers = {d["pid"] for d in cells["diagnostics"]}
    assert driver.pid not in workers  # the cells ran in Ray workers ...
    assert not any(d["store_imported"] for d in cells["diagnostics"])  # ... which never loaded the store


def wait_for_cpus(ray, wanted: float, timeout_s: float = 60) -> float:
    """The cluster's free CPUs once they equal wanted, or what they were at the timeout."""
    deadline = time.time() + timeout_s
    while (free := ray.available_resources().get("CPU", 0.0)) != wanted and time.time() < deadline:
        time.sleep(0.2)
    return free


def test_ctrl_c_on_a_joined_cluster_ends_the_runs_tasks_and_leaves_the_cluster_up(cluster, tmp_path, plugin_file):
    import ray

    suite = write_suite(tmp_path, "long", 'name = "toy_correlation"\nparams = { sleep_s = 60 }',
                        'name = "toy_gaussian"', seeds="[0, 1, 2, 3]")
    driver = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "--plugin-file", plugin_file("toy"), "run", str(suite),
         "--store", str(tmp_path / "long.sqlite"), "--no-report", "--executor", "ray", "--address", cluster],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_cpus(ray, 0.0) == 0.0, "the run should occupy both of the cluster's CPUs"
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "Traceback" not in out + err, out + err
    assert wait_for_cpus(ray, 2.0, timeout_s=30) == 2.0, "the interrupted run's tasks kept running"


def test_a_session_the_caller_owns_has_the_abandoned_tasks_cancelled(cluster, plugins, tmp_path):
    import ray

    from harness.ray_executor import RayExecutor

    suite = load(write_suite(tmp_path, "owned", 'name = "toy_correlation"\ngrid = { sleep_s = [0.0, 60.0] }',
                             'name = "toy_gaussian"', seeds="[0]"))
    results = grouping.map_cells(RayExecutor(address=cluster), suite.cells)
    cell, _ = next(results)  # the quick cell; the other sleeps on
    assert cell.method_params["sleep_s"] == 0.0
    results.close()  # as the runner does when it stops early
    assert ray.is_initialized(), "the executor must not shut down a session it did not start"
    assert wait_for_cpus(ray, 2.0, timeout_s=30) == 2.0, "the abandoned task kept running"
