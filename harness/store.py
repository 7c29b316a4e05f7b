"""The results store: SQLite (WAL), one row per finished cell, committed as each lands."""

from __future__ import annotations

import json
import platform
import sqlite3
from datetime import UTC, datetime
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
    PRIMARY KEY (run, key)
);
"""
COLUMNS = ["run", "key", "suite", "kind", "method", "method_label", "method_params", "data", "data_label",
           "data_params", "seed", "n", "budget", "device", "status", "error", "true_value", "true_stderr",
           "estimate", "metrics", "trajectory", "diagnostics", "wall_s", "steps", "kernel_ms", "peak_mem_mb",
           "finished"]


class Store:
    def __init__(self, path: str | Path = DEFAULT_STORE, read_only: bool = False, timeout: float = 30.0):
        """Open (or create) a store; read_only opens an existing one for reports and exports."""
        self.path = Path(path)
        try:
            if read_only:
                if not self.path.is_file():
                    raise UserError(f"no results store at {self.path}; run a suite first or pass --store.")
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=timeout)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as error:
            raise store_error(self.path, error) from None

    def begin_run(self, run: str, suite: Suite) -> None:
        with self._writing():
            self.db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run, suite.name, suite.path, json.dumps(suite.source), now(), platform.node(),
                 harness_version()),
            )
        owner = self.db.execute("SELECT suite FROM runs WHERE run = ?", (run,)).fetchone()[0]
        if owner != suite.name:
            raise UserError(f"run {run!r} in {self.path} belongs to suite {owner!r}; choose another --run name.")

    def finished_keys(self, run: str, include_failed: bool = True) -> set[str]:
        query = "SELECT key FROM cells WHERE run = ?" + ("" if include_failed else " AND status = 'ok'")
        return {row[0] for row in self.db.execute(query, (run,))}

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
            "finished": now(),
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
        return pd.read_sql_query("SELECT run, suite, created, suite_path FROM runs ORDER BY created", self.db)

    def run_summaries(self) -> list[dict[str, Any]]:
        """Each run, oldest first: its suite, its cells ok / failed / nonfinite, when it was created
        (started) and when its last cell finished (None before any)."""
        rows = self.db.execute(
            "SELECT runs.run, runs.suite, TOTAL(cells.status = 'ok'), TOTAL(cells.status = 'nonfinite'), "
            "COUNT(cells.key), runs.created, MAX(cells.finished) FROM runs LEFT JOIN cells ON cells.run = runs.run "
            "GROUP BY runs.run ORDER BY runs.created, runs.rowid").fetchall()
        return [{"run": run, "suite": suite, "ok": int(ok), "failed": cells - int(ok) - int(nonfinite),
                 "nonfinite": int(nonfinite), "started": created, "finished": finished}
                for run, suite, ok, nonfinite, cells, created, finished in rows]

    def latest_run(self) -> str | None:
        """The run most recently written to (its last finished cell, else its creation), or None if there is none."""
        row = self.db.execute(
            "SELECT runs.run FROM runs LEFT JOIN cells ON cells.run = runs.run GROUP BY runs.run "
            "ORDER BY MAX(runs.created, COALESCE(MAX(cells.finished), runs.created)) DESC, runs.rowid DESC "
            "LIMIT 1").fetchone()
        return row[0] if row else None

    def cells(self, run: str) -> pd.DataFrame:
        frame = pd.read_sql_query("SELECT * FROM cells WHERE run = ? ORDER BY finished", self.db, params=(run,))
        if frame.empty and run not in set(self.runs()["run"]):
            known = ", ".join(self.runs()["run"]) or "none yet"
            raise UserError(f"no run {run!r} in {self.path}. Runs there: {known}.")
        for column in ("method_params", "data_params", "metrics", "trajectory", "diagnostics"):
            frame[column] = frame[column].map(lambda text: json.loads(text) if text else {})
        return frame

    def _writing(self):
        return _Transaction(self)

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """Commit on success; turn SQLite's locked / read-only errors into sentences."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, _tb: Any) -> bool:
        if error is None:
            self.store.db.commit()
            return False
        self.store.db.rollback()
        if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError):
            raise store_error(self.store.path, error) from None
        return False


def store_error(path: Path, error: Exception) -> UserError:
    text = str(error)
    if "locked" in text:
        return UserError(f"the results store {path} is locked by another process; wait for it or use --store.")
    if isinstance(error, OSError) or any(word in text for word in ("readonly", "read-only", "unable to open")):
        return UserError(f"the results store {path} cannot be written ({text}); check its permissions or use --store.")
    return UserError(f"the results store {path} is not a usable SQLite database: {text}.")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
