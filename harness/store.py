"""The results store: SQLite (WAL), one row per finished cell, committed as each lands."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.errors import UserError
from harness.paths import DEFAULT_STORE
from harness.registry import harness_version

if TYPE_CHECKING:
    from harness.cells import Cell, CellResult
    from harness.suite import Suite

SCHEMA = """
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
    interval_low REAL, interval_high REAL, criterion REAL, flags TEXT,
    PRIMARY KEY (run, key)
);
CREATE TABLE IF NOT EXISTS leases (
    run TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL, token TEXT, heartbeat TEXT
);
"""
RUN_COLUMNS = ["run", "suite", "suite_path", "suite_source", "created", "host", "harness_version"]
COLUMNS = ["run", "key", "suite", "kind", "method", "method_label", "method_params", "data", "data_label",
           "data_params", "seed", "n", "budget", "device", "status", "error", "true_value", "true_stderr",
           "estimate", "metrics", "trajectory", "diagnostics", "wall_s", "steps", "kernel_ms", "peak_mem_mb",
           "finished", "interval_low", "interval_high", "criterion", "flags"]
# Columns added after the first stores were written, by table: an older store gets them when a run opens it
# (ALTER TABLE, NULL in its earlier rows); reading one that lacks them reads NULL.
ADDED_COLUMNS = {
    "cells": {"interval_low": "REAL", "interval_high": "REAL", "criterion": "REAL", "flags": "TEXT"},
    "leases": {"heartbeat": "TEXT"},
}
JSON_COLUMNS = ("method_params", "data_params", "metrics", "trajectory", "diagnostics", "flags")
NUMERIC_COLUMNS = ("seed", "n", "true_value", "true_stderr", "estimate", "wall_s", "steps", "kernel_ms", "peak_mem_mb",
                   "interval_low", "interval_high", "criterion")
SQLITE_HEADER = b"SQLite format 3\x00"
# A runner's lease is refreshed every HEARTBEAT_INTERVAL_S; another host's lease (or one whose pid cannot be
# checked here) counts as abandoned once it has not been heard from for the lease timeout. A beat every 30 s
# is one tiny write, nothing even on a network file system; 600 s spans twenty beats (a few skipped ones never
# make a live runner look dead) and a few minutes of difference between two hosts' clocks, and is short
# beside a run worth resuming on another machine.
HEARTBEAT_INTERVAL_S = 30.0
BEAT_LOCK_TIMEOUT_S = 5.0  # a beat waits this long for the store's lock, then is skipped
LEASE_TIMEOUT_VARIABLE = "MI_HARNESS_LEASE_TIMEOUT"
DEFAULT_LEASE_TIMEOUT_S = 600.0
LONGEST_LEASE_TIMEOUT_S = 365 * 24 * 3600.0


class Store:
    def __init__(self, path: str | Path = DEFAULT_STORE, read_only: bool = False, timeout: float = 30.0):
        """Open (or create) a store; read_only opens an existing one for reports and exports.

        An existing file is checked first through a read-only connection (SQLite's header, its
        quick_check, the runs and cells tables with every column), so a damaged or foreign file is
        refused in one sentence and left exactly as it was, never given tables of ours.
        """
        self.path = Path(path)
        self._heartbeats: dict[str, LeaseHeartbeat] = {}
        try:
            if self.path.is_dir():
                raise UserError(f"the results store {self.path} is a folder, not a results store; pass --store FILE.")
            # an empty file is SQLite's empty database (a reader polling for a new store may have made it):
            # a run makes its tables, while the reading commands say there is nothing to read
            if read_only or (self.path.exists() and self.path.stat().st_size > 0):
                self._check_file(read_only)
                self.db = self._connect_read_only(timeout)
                try:
                    self._check_contents(required=read_only)
                except BaseException:
                    self.db.close()
                    raise
                if read_only:
                    return
                self.db.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=timeout)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self._add_columns()
        except (sqlite3.Error, OSError) as error:
            raise store_error(self.path, error) from None

    def _check_file(self, read_only: bool) -> None:
        if not self.path.is_file():
            raise UserError(f"no results store at {self.path}; run a suite first or pass --store.")
        info = self.path.stat()
        if info.st_size == 0:
            raise UserError(f"the results store {self.path} is an empty file (0 bytes), not a results store; "
                            "remove it or pass another --store.")
        with self.path.open("rb") as file:
            header = file.read(100)
        if header[:len(SQLITE_HEADER)] != SQLITE_HEADER:
            raise UserError(f"the results store {self.path} is not a usable SQLite database: it does not start "
                            "with SQLite's header (a truncated, damaged or other kind of file); pass another --store.")
        if len(header) == 100 and not _has_wal(self.path):
            page_size = int.from_bytes(header[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            pages = int.from_bytes(header[28:32], "big")
            promised = pages * page_size if header[24:28] == header[92:96] else 0  # SQLite's own validity rule
            if page_size and (info.st_size < promised or info.st_size % page_size):
                raise UserError(f"the results store {self.path} is truncated ({info.st_size} bytes of the "
                                f"{promised or 'whole pages its header promises'}); it is left as it is: restore it "
                                "or pass another --store.")
        if not read_only and (not info.st_mode & 0o222 or not os.access(self.path, os.W_OK)):
            raise UserError(f"the results store {self.path} cannot be written (it is read-only); "
                            "check its permissions or use --store.")

    def _connect_read_only(self, timeout: float) -> sqlite3.Connection:
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=ro"
        if not os.access(self.path.parent, os.W_OK) and not Path(f"{self.path}-shm").exists():
            # a WAL store on a read-only file system: SQLite cannot make its -shm, and nothing can write it
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=timeout)

    def _check_contents(self, required: bool) -> None:
        problems = [row[0] for row in self.db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise UserError(f"the results store {self.path} is damaged (SQLite's check says: "
                            f"{shorten(problems[0])}); it is left as it is: restore it or pass another --store.")
        tables = [row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if not tables and not required:
            return  # an empty SQLite database: the store's tables are created in it
        for table, expected in (("runs", RUN_COLUMNS), ("cells", COLUMNS)):
            if table not in tables:
                held = ", ".join(shorten(name, 40) for name in tables[:5]) or "no tables"
                raise UserError(f"the results store {self.path} is not a mi-harness results store (it holds "
                                f"{held}, but no {table} table); pass another --store.")
            present = {row[0] for row in self.db.execute("SELECT name FROM pragma_table_info(?)", (table,))}
            added = ADDED_COLUMNS.get(table, {})
            if missing := [column for column in expected if column not in present and column not in added]:
                raise UserError(f"the results store {self.path} lacks the column(s) {', '.join(missing)} of its "
                                f"{table} table (made by another program or version); pass another --store.")

    def _add_columns(self) -> None:
        """Give a store written by an earlier version the columns added since (NULL in its rows)."""
        present = {table: {row[0] for row in self.db.execute("SELECT name FROM pragma_table_info(?)", (table,))}
                   for table in ADDED_COLUMNS}
        # the statements are built from the constants alone, never from a name read from the file
        missing = "".join([f"ALTER TABLE {table} ADD COLUMN {column} {ADDED_COLUMNS[table][column]}; "
                           for table in ADDED_COLUMNS for column in ADDED_COLUMNS[table]
                           if column not in present[table]])
        if missing:
            with self._writing():
                self.db.executescript(f"BEGIN; {missing}COMMIT;")

    def begin_run(self, run: str, suite: Suite) -> None:
        with self._writing():
            self.db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run, suite.name, suite.path, json.dumps(suite.source), now(), platform.node(),
                 harness_version()),
            )
        with self._reading():
            owner = self.db.execute("SELECT suite FROM runs WHERE run = ?", (run,)).fetchone()[0]
        if owner != suite.name:
            raise UserError(f"run {run!r} in {self.path} belongs to suite {owner!r}; choose another --run name.")

    def finished_keys(self, run: str, include_failed: bool = True) -> set[str]:
        query = "SELECT key FROM cells WHERE run = ?" + ("" if include_failed else " AND status = 'ok'")
        with self._reading():
            return {row[0] for row in self.db.execute(query, (run,))}

    def take_lease(self, run: str) -> str | None:
        """Claim `run` for this process (its pid and host) until release_lease, beating its heartbeat meanwhile.

        A live runner's lease refuses the claim in a sentence. A dead one's is taken over, and the note
        saying so is returned: on this host, its pid gone or reused by another process; on another host
        (or where its pid cannot be checked), not heard from for the lease timeout.
        """
        pid, host, token = os.getpid(), platform.node(), process_token(os.getpid())
        timeout = lease_timeout()
        note = None
        with self._writing():
            self.db.execute("BEGIN IMMEDIATE")  # check and claim as one step against a concurrent runner
            row = self.db.execute("SELECT pid, host, since, token, heartbeat FROM leases WHERE run = ?",
                                  (run,)).fetchone()
            if row is not None and (row[0], row[1]) != (pid, host):
                note = self._take_over(run, Lease(*row), host, timeout)
            claimed = now()
            self.db.execute("INSERT OR REPLACE INTO leases (run, pid, host, since, token, heartbeat) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (run, pid, host, claimed, token, claimed))
        if run not in self._heartbeats:
            self._heartbeats[run] = LeaseHeartbeat(self.path.absolute(), run, pid, host)
        return note

    def _take_over(self, run: str, held: Lease, host: str, timeout: float) -> str:
        """The note for taking over another runner's lease, or a sentence refusing it while that runner may run."""
        running = process_running(held.pid, held.token) if held.host == host else None
        if running:
            raise held.in_progress(run, self.path)
        if running is False:
            return held.left(run, "is no longer running")
        abandoned = abandoned_at(held.heard, timeout)
        if datetime.now(UTC) < abandoned:
            raise held.in_progress(run, self.path, f", last heard from at {held.heard}; it counts as abandoned if "
                                                   f"not heard from by {abandoned.isoformat(timespec='seconds')}")
        return held.left(run, f"was last heard from at {held.heard}, over {timeout:.10g} s ago")

    def lease_lost(self, run: str) -> bool:
        """Whether another runner has taken `run` over from this one (its heartbeat found the lease gone)."""
        heartbeat = self._heartbeats.get(run)
        return heartbeat is not None and heartbeat.lost.is_set()

    def release_lease(self, run: str) -> None:
        if heartbeat := self._heartbeats.pop(run, None):
            heartbeat.stop()  # first: a store that refuses the release below must not keep the lease alive
        with self._writing():
            self.db.execute("DELETE FROM leases WHERE run = ? AND pid = ? AND host = ?",
                            (run, os.getpid(), platform.node()))

    def write(self, run: str, cell: Cell, result: CellResult) -> None:
        """Insert a finished cell. A successful row is never replaced; a failed one may be retried."""
        row = {
            "run": run, "key": cell.key, "suite": cell.suite, "kind": cell.study, "method": cell.method,
            "method_label": cell.method_label, "method_params": json.dumps(cell.method_params, sort_keys=True),
            "data": cell.data, "data_label": cell.data_label, "data_params": json.dumps(cell.data_params, sort_keys=True),
            "seed": cell.seed, "n": cell.n, "budget": cell.budget.model_dump_json(), "device": cell.device,
            "status": result.status, "error": result.error, "true_value": result.true_value,
            "true_stderr": result.true_stderr, "estimate": result.estimate, "metrics": json.dumps(result.metrics),
            "trajectory": json.dumps(result.trajectory), "diagnostics": json.dumps(result.diagnostics, default=str),
            "wall_s": result.wall_s, "steps": result.steps,
            "kernel_ms": result.diagnostics.get("kernel_ms"), "peak_mem_mb": result.diagnostics.get("peak_mem_mb"),
            "finished": now(), "interval_low": result.interval_low, "interval_high": result.interval_high,
            "criterion": result.criterion, "flags": json.dumps(result.flags),
        }
        placeholders = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:])
        with self._writing():
            self.db.execute(
                f"INSERT INTO cells ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
                f"ON CONFLICT (run, key) DO UPDATE SET {updates} WHERE cells.status != 'ok'",
                [row[c] for c in COLUMNS],
            )

    def discard_run(self, run: str) -> None:
        """Forget a run entirely (used to regenerate reference reports from scratch)."""
        with self._writing():
            self.db.execute("DELETE FROM cells WHERE run = ?", (run,))
            self.db.execute("DELETE FROM runs WHERE run = ?", (run,))

    def runs(self) -> pd.DataFrame:
        with self._reading():
            return pd.read_sql_query("SELECT run, suite, created, suite_path FROM runs ORDER BY created", self.db)

    def run_summaries(self) -> list[dict[str, Any]]:
        """Each run, oldest first: its suite, its cells ok / failed / nonfinite, when it was created
        (started) and when its last cell finished (None before any)."""
        with self._reading():
            rows = self.db.execute(
                "SELECT runs.run, runs.suite, TOTAL(cells.status = 'ok'), TOTAL(cells.status = 'nonfinite'), "
            "COUNT(cells.key), runs.created, MAX(cells.finished) FROM runs LEFT JOIN cells ON cells.run = runs.run "
                "GROUP BY runs.run ORDER BY runs.created, runs.rowid").fetchall()
            return [{"run": run, "suite": suite, "ok": int(ok), "failed": cells - int(ok) - int(nonfinite),
                     "nonfinite": int(nonfinite), "started": created, "finished": finished}
                    for run, suite, ok, nonfinite, cells, created, finished in rows]

    def latest_run(self) -> str | None:
        """The run most recently written to (its last finished cell, else its creation), or None if there is none."""
        with self._reading():
            row = self.db.execute(
                "SELECT runs.run FROM runs LEFT JOIN cells ON cells.run = runs.run GROUP BY runs.run "
                "ORDER BY MAX(runs.created, COALESCE(MAX(cells.finished), runs.created)) DESC, runs.rowid DESC "
                "LIMIT 1").fetchone()
        return row[0] if row else None

    def cells(self, run: str) -> pd.DataFrame:
        with self._reading():
            frame = pd.read_sql_query("SELECT * FROM cells WHERE run = ? ORDER BY finished", self.db, params=(run,))
        for column in ADDED_COLUMNS["cells"]:
            if column not in frame:  # a store of an earlier version, opened read-only
                frame[column] = None
        if frame.empty and run not in set(self.runs()["run"]):
            known = ", ".join(self.runs()["run"]) or "none yet"
            raise UserError(f"no run {run!r} in {self.path}. Runs there: {known}.")
        for column in JSON_COLUMNS:
            texts = zip(frame["key"], frame[column], strict=True)
            frame[column] = [self._decoded(run, key, column, text) for key, text in texts]
        for column in NUMERIC_COLUMNS:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            if bad := list(frame["key"][numbers.isna() & frame[column].notna()]):
                raise UserError(f"the results store {self.path} is damaged: cell {shorten(str(bad[0]))} of run "
                                f"{run!r} holds a non-number in {column}; restore it or pass another --store.")
        return frame

    def check_run(self, run: str) -> None:
        """Read every stored cell of `run` as a report would, so that damage is named before a rerun writes."""
        with self._reading():
            known = self.db.execute("SELECT 1 FROM runs WHERE run = ?", (run,)).fetchone()
        if known:
            self.cells(run)

    def _decoded(self, run: str, key: str, column: str, text: Any) -> Any:
        try:
            return json.loads(text) if text else {}
        except (TypeError, ValueError, RecursionError):
            raise UserError(f"the results store {self.path} is damaged: cell {shorten(str(key))} of run {run!r} "
                            f"holds no valid JSON in {column}; restore it or pass another --store.") from None

    def _writing(self):
        return _Transaction(self)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn any SQLite (or pandas-wrapped SQLite) error while reading into the store's sentence."""
        try:
            yield
        except (sqlite3.Error, pd.errors.DatabaseError) as error:
            raise store_error(self.path, error.__cause__ or error) from None

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True)
class Lease:
    """A row of the leases table: which runner holds a run, since when, and when it was last heard from."""

    pid: int
    host: str
    since: str
    token: str | None
    heartbeat: str | None

    @property
    def heard(self) -> str:
        return self.heartbeat or self.since  # a lease of an earlier version never beat: its claim is its last word

    def in_progress(self, run: str, store: Path, detail: str = "") -> UserError:
        return UserError(f"run {run!r} is in progress in {store} (pid {self.pid} on {self.host} since {self.since}"
                         f"{detail}); wait for it, or use another --run.")

    def left(self, run: str, why: str) -> str:
        return (f"run {run!r} was left by pid {self.pid} on {self.host} (since {self.since}), which {why}; "
                "this runner takes it over.")


class LeaseHeartbeat:
    """Writes the time into a lease's heartbeat every HEARTBEAT_INTERVAL_S until stopped.

    It beats from a daemon thread (never keeping the process alive), each beat through a connection of
    its own (SQLite's connections are not shared across threads). A beat that cannot be written (a full
    disk, a lock held past BEAT_LOCK_TIMEOUT_S, a store removed) is skipped and the run goes on: the
    default lease timeout spans twenty beats.
    """

    def __init__(self, path: Path, run: str, pid: int, host: str):
        self.uri = f"file:{urllib.parse.quote(str(path))}?mode=rw"  # rw: a beat never creates a removed store
        self.run, self.pid, self.host = run, pid, host
        self._stopped = threading.Event()
        self.lost = threading.Event()  # set when a beat finds the lease held by another runner
        self._thread = threading.Thread(target=self._beat_until_stopped, name=f"lease heartbeat of {run}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(BEAT_LOCK_TIMEOUT_S)  # a beat in flight lands first; one that hangs is left to die

    def _beat_until_stopped(self) -> None:
        while not self._stopped.wait(HEARTBEAT_INTERVAL_S):
            self._beat()

    def _beat(self) -> None:
        try:
            with contextlib.closing(sqlite3.connect(self.uri, uri=True, timeout=BEAT_LOCK_TIMEOUT_S)) as db, db:
                beat = db.execute("UPDATE leases SET heartbeat = ? WHERE run = ? AND pid = ? AND host = ?",
                                  (now(), self.run, self.pid, self.host))
                if beat.rowcount == 0:
                    self.lost.set()
        except sqlite3.Error:
            pass  # this beat is skipped; the next may land


class _Transaction:
    """Commit on success; turn SQLite's locked / read-only errors into sentences."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> bool:
        if error is None:
            try:  # the commit is where a full disk or a lost lock shows: inside the handling
                self.store.db.commit()
                return False
            except sqlite3.Error as failure:
                error = failure
        try:
            self.store.db.rollback()
        except sqlite3.Error:
            pass  # nothing was committed by this transaction; the store keeps every earlier commit
        if isinstance(error, sqlite3.Error):
            raise store_error(self.store.path, error) from None
        return False


def store_error(path: Path, error: Exception) -> UserError:
    text = shorten(str(error))
    if "disk is full" in text or "No space left" in text:
        return UserError(f"the results store {path} could not be written: the disk is full ({text}); every cell "
                         "committed before is kept: free some space and rerun to resume.")
    if "locked" in text:
        return UserError(f"the results store {path} is locked by another process; wait for it or use --store.")
    if isinstance(error, OSError) or any(word in text for word in ("readonly", "read-only", "unable to open")):
        return UserError(f"the results store {path} cannot be written ({text}); check its permissions or use --store.")
    return UserError(f"the results store {path} is not a usable SQLite database: {text}.")


def _has_wal(path: Path) -> bool:
    """A live write-ahead log: the main file may then lag behind its header until the next checkpoint."""
    wal = Path(f"{path}-wal")
    return wal.is_file() and wal.stat().st_size > 0


def shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def process_token(pid: int) -> str:
    """The process's start time (Linux /proc), telling a live pid from a reused one; "" where unknown or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] in ("Z", "X") else fields[19]


def process_running(pid: int, token: str | None) -> bool | None:
    """Whether this host's process `pid`, started at `token`, still runs; None where a process `pid` exists
    but cannot be told from a reuse of its pid (no /proc, or no start time recorded)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    if not Path("/proc/self/stat").exists():
        return None  # no /proc: a signal-0 probe is all there is, and a reused pid answers it too
    current = process_token(pid)
    if not current:
        return False
    return current == token if token else None


def lease_timeout() -> float:
    """Seconds without a heartbeat after which a lease counts as abandoned: MI_HARNESS_LEASE_TIMEOUT, else 600."""
    text = os.environ.get(LEASE_TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_LEASE_TIMEOUT_S
    shortest = 3 * HEARTBEAT_INTERVAL_S  # a live runner may miss a beat or two (a lock, a full disk)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not shortest <= seconds <= LONGEST_LEASE_TIMEOUT_S:  # NaN fails this too
        raise UserError(f"{LEASE_TIMEOUT_VARIABLE}={shorten(text, 40)!r} is not a lease timeout: give a number of "
                        f"seconds from {shortest:.10g} (three heartbeats) to {LONGEST_LEASE_TIMEOUT_S:.10g} (a "
                        f"year), or unset it for the default, {DEFAULT_LEASE_TIMEOUT_S:.10g}.")
    return seconds


def abandoned_at(heard: str, timeout: float) -> datetime:
    """When a lease last heard from at `heard` (an ISO time) counts as abandoned; at once where it is no time."""
    try:
        last = datetime.fromisoformat(heard)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    try:
        return (last if last.tzinfo else last.replace(tzinfo=UTC)) + timedelta(seconds=timeout)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)  # heard from at the end of time: never abandoned, by the rule


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
