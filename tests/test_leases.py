"""Leases across hosts: a runner's lease carries a heartbeat, refreshed while it runs, and another host's
lease is taken over only once it has not been heard from for the lease timeout (MI_HARNESS_LEASE_TIMEOUT).

A lease written "by another host" is a row whose host is not this machine's name; the end-to-end test runs
a real runner in a subprocess, beating fast, and looks at it from "another host" by renaming this one.
"""

import contextlib
import platform
import re
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_in_process import run_main
from test_store_hostile import TOY, one_error, suite_file, toy  # noqa: F401 - toy: the fixture that loads TOY

from harness import runner, store
from harness.errors import UserError
from harness.store import Store
from harness.suite import load

pytestmark = pytest.mark.usefixtures("toy")

# The schema of the stores written before the heartbeat (and before the cells' interval columns).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, suite TEXT NOT NULL, suite_path TEXT, suite_source TEXT,
    created TEXT NOT NULL, host TEXT, harness_version TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run TEXT NOT NULL REFERENCES runs(run), key TEXT NOT NULL, suite TEXT NOT NULL, kind TEXT NOT NULL,
    method TEXT NOT NULL, method_label TEXT NOT NULL, method_params TEXT NOT NULL,
    data TEXT NOT NULL, data_label TEXT NOT NULL, data_params TEXT NOT NULL,
    seed INTEGER NOT NULL, n INTEGER NOT NULL, budget TEXT NOT NULL, device TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, true_value REAL, true_stderr REAL, estimate REAL,
    metrics TEXT, trajectory TEXT, diagnostics TEXT, wall_s REAL, steps INTEGER,
    kernel_ms REAL, peak_mem_mb REAL, finished TEXT NOT NULL,
    PRIMARY KEY (run, key)
);
CREATE TABLE IF NOT EXISTS leases (
    run TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL, token TEXT
);
"""
LONG_AGO = "2020-01-01T00:00:00+00:00"
FAST_BEAT_S = 0.2
# `mi-harness ARGS` in a fresh interpreter whose leases beat every FAST_BEAT_S
BEATING_FAST = f"from harness import cli, store; store.HEARTBEAT_INTERVAL_S = {FAST_BEAT_S}; cli.main()"


@pytest.fixture(autouse=True)
def default_timeout(monkeypatch):
    monkeypatch.delenv(store.LEASE_TIMEOUT_VARIABLE, raising=False)


def lease_elsewhere(db: Path, heartbeat: str | None) -> None:
    """Run 'toy' leased by pid 4242 on host 'elsewhere' since LONG_AGO, last heard from at `heartbeat`."""
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("INSERT INTO leases (run, pid, host, since, token, heartbeat) "
                           "VALUES ('toy', 4242, 'elsewhere', ?, 'x', ?)", (LONG_AGO, heartbeat))


def leases(db: Path) -> list[tuple]:
    """(pid, host, since, heartbeat) of each lease; [] while the store cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT pid, host, since, heartbeat FROM leases").fetchall()
    except sqlite3.Error:
        return []


def heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("lease heartbeat")]


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def test_another_hosts_lease_unheard_from_for_the_timeout_is_taken_over_with_a_note(tmp_path, capsys):
    db = tmp_path / "stale.sqlite"
    Store(db).close()
    heard = stamp(datetime.now(UTC) - timedelta(seconds=store.DEFAULT_LEASE_TIMEOUT_S + 60))
    lease_elsewhere(db, heard)
    summary = runner.run(load(suite_file(tmp_path)), Store(db), show_progress=False)
    assert summary.statuses == {"ok": 6}
    assert (f"run 'toy' was left by pid 4242 on elsewhere (since {LONG_AGO}), which was last heard from at {heard}, "
            "over 600 s ago; this runner takes it over.") in capsys.readouterr().err
    assert leases(db) == [] and heartbeat_threads() == []  # released, and its heartbeat stopped


def test_another_hosts_lease_heard_from_lately_refuses_the_run_in_one_sentence(tmp_path, monkeypatch, capsys):
    db = tmp_path / "fresh.sqlite"
    Store(db).close()
    heard = datetime.now(UTC).replace(microsecond=0)
    lease_elsewhere(db, stamp(heard))
    code, output = run_main(monkeypatch, capsys, "--plugin-file", TOY, "run", str(suite_file(tmp_path)), "--store",
                            str(db), "--no-report")
    assert code == 2
    abandoned = heard + timedelta(seconds=store.DEFAULT_LEASE_TIMEOUT_S)
    assert one_error(output) == (
        f"error: run 'toy' is in progress in {db} (pid 4242 on elsewhere since {LONG_AGO}, last heard from at "
        f"{stamp(heard)}; it counts as abandoned if not heard from by {stamp(abandoned)}); wait for it, or use "
        "another --run.")
    assert leases(db) == [(4242, "elsewhere", LONG_AGO, stamp(heard))]  # left as it was
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0


def test_a_store_of_an_earlier_version_gains_the_heartbeat_column_and_runs(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.executescript(OLD_SCHEMA)
        # an earlier version's lease never beat: it was last heard from when it was taken
        connection.execute("INSERT INTO leases VALUES ('toy', 4242, 'elsewhere', ?, 'x')", (LONG_AGO,))
    summary = runner.run(load(suite_file(tmp_path)), Store(db), show_progress=False)
    assert summary.statuses == {"ok": 6}
    assert f"which was last heard from at {LONG_AGO}, over 600 s ago; this runner takes it over." \
        in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(db)) as connection:
        columns = {table: {row[0] for row in connection.execute("SELECT name FROM pragma_table_info(?)", (table,))}
                   for table in ("cells", "leases")}
    assert "heartbeat" in columns["leases"] and set(store.ADDED_COLUMNS["cells"]) <= columns["cells"]
    assert leases(db) == []


def test_a_live_runners_heartbeat_keeps_other_hosts_off_until_it_dies(tmp_path, monkeypatch):
    db = tmp_path / "beating.sqlite"
    suite = suite_file(tmp_path, seeds=str(list(range(15))), sleep=1.0)  # 30 s of cells; it is killed sooner
    holder = subprocess.Popen([sys.executable, "-c", BEATING_FAST, "--plugin-file", TOY, "run", str(suite),
                               "--store", str(db), "--no-report"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        beats: set[str] = set()
        deadline = time.time() + 120
        while len(beats) < 6 and time.time() < deadline and holder.poll() is None:
            beats |= {heartbeat for *_, heartbeat in leases(db)}
            time.sleep(0.05)
        assert len(beats) >= 6, f"the heartbeat did not advance: {beats}"  # over five seconds of beats
        [(pid, host, since, _)] = leases(db)
        assert pid == holder.pid and host == platform.node()

        timeout = 3.0  # shorter than the lease's age: only its heartbeat keeps it
        assert datetime.now(UTC) - datetime.fromisoformat(since) > timedelta(seconds=timeout)
        monkeypatch.setattr(store, "HEARTBEAT_INTERVAL_S", FAST_BEAT_S)
        monkeypatch.setenv(store.LEASE_TIMEOUT_VARIABLE, str(timeout))
        monkeypatch.setattr(platform, "node", lambda: "elsewhere")
        other = Store(db)
        with pytest.raises(UserError, match=re.escape(f"pid {pid} on {host} since {since}, last heard from at ")):
            other.take_lease("toy")

        holder.kill()
        holder.wait()
        [(*_, last)] = leases(db)
        note = None
        while note is None and time.time() < deadline:
            with contextlib.suppress(UserError):
                note = other.take_lease("toy")
            time.sleep(0.1)
        assert note == (f"run 'toy' was left by pid {pid} on {host} (since {since}), which was last heard from at "
                        f"{last}, over 3 s ago; this runner takes it over.")
        assert datetime.now(UTC) >= datetime.fromisoformat(last) + timedelta(seconds=timeout)
        other.release_lease("toy")
        other.close()
        assert leases(db) == [] and heartbeat_threads() == []
    finally:
        holder.kill()
        holder.wait()


def test_a_beat_that_cannot_be_written_is_skipped_and_the_next_lands(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "HEARTBEAT_INTERVAL_S", 0.05)
    monkeypatch.setattr(store, "BEAT_LOCK_TIMEOUT_S", 0.05)
    db = tmp_path / "locked.sqlite"
    results = Store(db)
    results.take_lease("toy")
    [(*_, first)] = leases(db)
    with contextlib.closing(sqlite3.connect(db)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(1.5)  # every beat meanwhile finds the store locked
        [(*_, while_locked)] = leases(db)
        assert while_locked == first and len(heartbeat_threads()) == 1
        blocker.rollback()
    deadline = time.time() + 10
    while leases(db)[0][3] == first and time.time() < deadline:
        time.sleep(0.05)
    assert leases(db)[0][3] > first
    results.release_lease("toy")
    assert leases(db) == [] and heartbeat_threads() == []


def test_a_runner_whose_lease_was_taken_over_stops_after_the_cell_in_hand(tmp_path, monkeypatch):
    """Another host took the run over while this runner went unheard: its next beat finds the lease gone,
    and it stops after writing the cell it was on, so the two do not both compute the rest."""
    monkeypatch.setattr(store, "HEARTBEAT_INTERVAL_S", 0.05)
    results = Store(tmp_path / "taken.sqlite")
    write = results.write

    def write_then_lose_the_lease(run, cell, result):
        write(run, cell, result)
        with contextlib.closing(sqlite3.connect(results.path)) as other, other:
            other.execute("UPDATE leases SET pid = 4242, host = 'elsewhere' WHERE run = ?", (run,))
        deadline = time.time() + 5
        while not results.lease_lost(run) and time.time() < deadline:
            time.sleep(0.02)

    monkeypatch.setattr(results, "write", write_then_lose_the_lease)
    with pytest.raises(UserError, match="taken over by another runner .* the 1 cell finished here are kept, the rest"):
        runner.run(load(suite_file(tmp_path)), results, show_progress=False)
    assert len(results.finished_keys("toy")) == 1 and heartbeat_threads() == []
    assert leases(results.path)[0][:2] == (4242, "elsewhere")  # the new holder's lease is left alone


def test_ctrl_c_stops_the_heartbeat_and_releases_the_lease(tmp_path, monkeypatch):
    results = Store(tmp_path / "interrupted.sqlite")

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run(load(suite_file(tmp_path)), results, show_progress=False)
    assert leases(results.path) == [] and heartbeat_threads() == []


@pytest.mark.parametrize("value", ["ten", "", "nan", "inf", "-600", "0", "89", "1e12", "600 s"])
def test_a_bad_lease_timeout_is_one_sentence(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setenv(store.LEASE_TIMEOUT_VARIABLE, value)
    code, output = run_main(monkeypatch, capsys, "--plugin-file", TOY, "run", str(suite_file(tmp_path)), "--store",
                            str(tmp_path / "store.sqlite"), "--no-report")
    assert code == 2
    assert one_error(output) == (
        f"error: MI_HARNESS_LEASE_TIMEOUT={value!r} is not a lease timeout: give a number of seconds from 90 (three "
        "heartbeats) to 31536000 (a year), or unset it for the default, 600.")


def test_a_good_lease_timeout_is_read_in_seconds(monkeypatch):
    for value, seconds in (("90", 90.0), ("3600", 3600.0), (" 1.5e3 ", 1500.0)):
        monkeypatch.setenv(store.LEASE_TIMEOUT_VARIABLE, value)
        assert store.lease_timeout() == seconds
