"""Processes: a runner killed at any moment leaves no worker and no resource tracker behind; SIGTERM
stops a run like Ctrl-C does (finished cells saved, a message, exit 143)."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

TOY = str(Path(__file__).parent / "plugin_files" / "toy.py")
SLOW = """
    suite = { name = "slow", seeds = [0, 1, 2, 3, 4, 5, 6, 7] }
    budget = { samples = [200] }
    estimators = [{ name = "toy_correlation", params = { sleep_s = 0.3 } }]
    tasks = [{ name = "toy_gaussian", grid = { rho = [0.2, 0.7] } }]
"""
GRACE_S = 8.0  # workers poll their parent once a second; a worker still importing checks when it is ready


def command(folder: Path, store: Path, jobs: int = 2) -> list[str]:
    suite = folder / "slow.toml"
    if not suite.exists():
        suite.write_text(textwrap.dedent(SLOW))
    return [sys.executable, "-m", "harness.cli", "--plugin-file", TOY, "run", str(suite), "--store", str(store),
            "--no-report", "--jobs", str(jobs)]


def stat_fields(pid: int) -> list[str] | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def in_session(session: int) -> list[int]:
    """Live (not zombie) processes of a session: a runner started with start_new_session leads its own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) and fields[0] not in "ZX":
            if int(fields[3]) == session:
                found.append(int(entry.name))
    return found


def rows(db: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return [row[0] for row in connection.execute("SELECT key FROM cells")]
    except sqlite3.Error:
        return []


def test_a_runner_killed_at_random_moments_leaves_no_process(tmp_path):
    rng = random.Random(23)
    victims, pooled = [], 0
    started = time.time()
    for index in range(20):
        store = tmp_path / f"victim{index}.sqlite"
        victim = subprocess.Popen(command(tmp_path, store), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        if index % 2:  # just after the pool's first process appears: the start-up the issue found
            deadline = time.time() + 20
            while len(in_session(victim.pid)) < 2 and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 1.0))
        else:  # anywhere from the interpreter's start to the cells running
            time.sleep(rng.uniform(0, 3.0))
        pooled += len(in_session(victim.pid)) > 1
        victim.kill()
        victim.wait()
        victims.append(victim.pid)
    deadline = time.time() + GRACE_S
    left = {pid: in_session(pid) for pid in victims}
    while any(left.values()) and time.time() < deadline:
        time.sleep(0.2)
        left = {pid: in_session(pid) for pid in victims}
    lingering = [pid for pids in left.values() for pid in pids]
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    commands_of = {pid: (Path("/proc") / str(pid) / "cmdline").read_bytes()[:80] for pid in lingering
                   if (Path("/proc") / str(pid)).exists()}
    assert not lingering, f"processes outlived their killed runner: {commands_of}"
    assert pooled >= 8, f"only {pooled} of 20 runners were killed after their pool started"
    assert time.time() - started < 90


def test_sigterm_saves_the_finished_cells_says_so_and_exits_143(tmp_path):
    store = tmp_path / "term.sqlite"
    runner = subprocess.Popen(command(tmp_path, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.time() + 90
    while len(rows(store)) < 2 and time.time() < deadline and runner.poll() is None:
        time.sleep(0.05)
    assert len(rows(store)) >= 2
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 143, out + err
    assert "Traceback" not in out + err
    saved = rows(store)
    assert f"terminated: {len(saved)} finished cells are saved in {store}; rerun to resume." in out
    assert 2 <= len(saved) < 16 and len(set(saved)) == len(saved)
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # the lease was released
    deadline = time.time() + GRACE_S
    while in_session(runner.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not in_session(runner.pid), "a worker outlived its terminated runner"
