"""Damaged, foreign, read-only and full stores, and two runners on one run.

Every command (`run`, `runs`, `report`, `export`, `compare STORE:RUN`) on a store from the corpus
below answers in one sentence (exit 2) or, where the damage does not touch what it reads, does its
work; either way it leaves the store's bytes and modification time exactly as they were. The corpus
is made from a real store: truncated at several offsets, bytes flipped in its header and in its
pages, its JSON columns overwritten with garbage, a column left out, and files that are no store
at all (text, zero bytes, another program's SQLite database, a folder).
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_in_process import run_main

from harness import registry, runner
from harness.errors import UserError
from harness.store import Store
from harness.suite import load

TOY = str(Path(__file__).parent / "plugin_files" / "toy.py")
SUITE = """
    suite = {{ name = "toy", seeds = {seeds} }}
    budget = {{ samples = [128] }}
    estimators = [{{ name = "toy_correlation", params = {{ sleep_s = {sleep} }} }}]
    tasks = [{{ name = "toy_gaussian", grid = {{ rho = {rhos} }} }}]
"""


def suite_file(folder: Path, seeds="[0, 1, 2]", rhos="[0.3, 0.8]", sleep=0.0) -> Path:
    path = folder / "toy.toml"
    path.write_text(textwrap.dedent(SUITE.format(seeds=seeds, rhos=rhos, sleep=sleep)))
    return path


@pytest.fixture(scope="module")
def toy():
    registry.load_plugin_file(TOY)
    yield
    registry.unregister(TOY)


@pytest.fixture(scope="module")
def real_store(toy, tmp_path_factory) -> Path:
    """A closed store (no -wal left) with run 'toy': 12 cells over several pages."""
    folder = tmp_path_factory.mktemp("real")
    path = folder / "real.sqlite"
    store = Store(path)
    runner.run(load(suite_file(folder, seeds="[0, 1, 2, 3]", rhos="[0.2, 0.5, 0.8]")), store, show_progress=False)
    store.close()
    assert not Path(f"{path}-wal").exists()
    return path


def flipped(data: bytes, *offsets: int) -> bytes:
    damaged = bytearray(data)
    for offset in offsets:
        damaged[offset] ^= 0xFF
    return bytes(damaged)


def corpus(real: Path, folder: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (path, strict): a strict case must be refused by every command."""
    data = real.read_bytes()
    size, page = len(data), 4096
    assert size >= 4 * page
    cases: dict[str, tuple[Path, bool]] = {}

    def put(name: str, content: bytes, strict: bool = True) -> None:
        path = folder / f"{name}.sqlite"
        path.write_bytes(content)
        cases[name] = (path, strict)

    for offset in (10, 99, 100, 1000, page, page + 1000, size // 2, size - page, size - 1):
        put(f"truncated_at_{offset}", data[:offset])
    put("header_magic", flipped(data, 3))
    put("header_page_size", flipped(data, 16))
    put("header_payload_fraction", flipped(data, 21))
    put("first_page_btree", flipped(data, 100))
    for at in (page + page // 2, size - page // 2, 2 * page + 8):
        put(f"page_flip_at_{at}", flipped(data, at, at + 1, at + 2), strict=False)
    put("text_file", b"run,estimate\nx,1.0\n" * 200)
    put("zero_bytes", b"")

    def altered(name: str, statements: tuple[str, ...], start: Path | None = real) -> None:
        path = folder / f"{name}.sqlite"
        if start is not None:
            shutil.copy(start, path)
        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        db.close()
        cases[name] = (path, True)

    altered("foreign_schema", ("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                               "INSERT INTO users VALUES (1, 'ada')"), start=None)
    altered("missing_column", ("ALTER TABLE cells DROP COLUMN estimate",))
    altered("json_garbage", ("UPDATE cells SET trajectory = '[[1, 0.5], [2' WHERE rowid = 3",))

    folder_store = folder / "folder.sqlite"
    folder_store.mkdir()
    cases["folder"] = (folder_store, True)
    for path, _ in cases.values():
        assert not Path(f"{path}-wal").exists()
    return cases


def fingerprint(path: Path) -> tuple:
    if path.is_dir():
        return ("folder", sorted(os.listdir(path)), path.stat().st_mtime_ns)
    return (path.read_bytes(), path.stat().st_mtime_ns)


def commands(store: Path, suite: Path, reports: Path) -> dict[str, list[str]]:
    return {
        "runs": ["runs", "--store", str(store)],
        "report": ["report", "toy", "--store", str(store), "--reports-dir", str(reports)],
        "export": ["export", "toy", "--store", str(store)],
        "compare": ["compare", f"{store}:toy", f"{store}:toy"],
        "run": ["--plugin-file", TOY, "run", str(suite), "--store", str(store), "--no-report"],
    }


def one_error(output: str) -> str:
    """The one error line, the last of the output (a `run` whose store opened says its suite's size first)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    return errors[0]


def test_every_command_on_a_damaged_store_answers_in_one_sentence_and_changes_nothing(
        toy, real_store, tmp_path, monkeypatch, capsys):
    suite = suite_file(tmp_path)
    for name, (path, strict) in corpus(real_store, tmp_path).items():
        for command, args in commands(path, suite, tmp_path / "reports").items():
            before = fingerprint(path)
            code, output = run_main(monkeypatch, capsys, *args)
            assert "Traceback" not in output, (name, command, output)
            if name == "zero_bytes" and command == "run":  # SQLite's empty database: a run makes its tables
                assert code == 0 and path.stat().st_size > 0, output
                path.write_bytes(b"")
                continue
            # damage that SQLite's check cannot see (a flipped byte inside a stored text) may let a run resume
            if strict or command != "run" or code != 0:
                assert fingerprint(path) == before, f"{command} changed the store {name}"
            if strict and not (name == "json_garbage" and command == "runs"):  # `runs` reads no JSON
                assert code == 2, (name, command, code, output)
            assert code in (0, 2), (name, command, code, output)
            if code == 2:
                assert str(path) in one_error(output), (name, command, output)
    # run on a foreign database was refused before creating any table in it
    with sqlite3.connect(f"file:{tmp_path / 'foreign_schema.sqlite'}?mode=ro", uri=True) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"users"}


@pytest.mark.parametrize("name, expected", [
    ("text_file", "is not a usable SQLite database"),
    ("zero_bytes", "is an empty file (0 bytes)"),
    ("foreign_schema", "is not a mi-harness results store (it holds users, but no runs table)"),
    ("missing_column", "lacks the column(s) estimate of its cells table"),
    ("json_garbage", "holds no valid JSON in trajectory"),
    ("folder", "is a folder, not a results store"),
    ("truncated_at_99", "is not a usable SQLite database"),
    ("first_page_btree", "the results store"),
])
def test_each_kind_of_damage_is_named(toy, real_store, tmp_path, name, expected):
    path, _ = corpus(real_store, tmp_path)[name]
    with pytest.raises(UserError, match="^the results store") as raised:
        Store(path, read_only=True).cells("toy")
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_run_on_an_empty_sqlite_database_creates_the_tables(toy, tmp_path):
    path = tmp_path / "empty.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 1")  # a valid database (its header written) with no tables
    db.close()
    assert path.stat().st_size > 0
    summary = runner.run(load(suite_file(tmp_path)), Store(path), show_progress=False)
    assert summary.statuses == {"ok": 6}


def test_a_read_only_store_file_refuses_run_and_serves_the_reading_commands(
        toy, real_store, tmp_path, monkeypatch, capsys):
    path = tmp_path / "read_only.sqlite"
    shutil.copy(real_store, path)
    path.chmod(0o444)  # honoured even by root, who could write it anyway
    reading_only(path, tmp_path, monkeypatch, capsys)


def reading_only(path: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A read-only store: `run` refuses in a sentence, the reading commands do their work; its bytes unchanged."""
    suite = suite_file(tmp_path)
    for command, args in commands(path, suite, tmp_path / "reports").items():
        before = fingerprint(path)
        code, output = run_main(monkeypatch, capsys, *args)
        assert fingerprint(path) == before and "Traceback" not in output, command
        if command == "run":
            assert code == 2 and "cannot be written (it is read-only)" in one_error(output)
        else:
            assert code == 0, (command, output)


def mounted(folder: Path, size: str) -> bool:
    """Mount a tmpfs of `size` on folder; in CI (run as root) a refusal fails the test instead of skipping it."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0 and os.environ.get("CI"):
        pytest.fail(f"CI runs as root and must mount a tmpfs for this test: {done.stderr.strip()}")
    return done.returncode == 0


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_store_on_a_read_only_file_system(toy, real_store, tmp_path, monkeypatch, capsys):
    mount = tmp_path / "ro"
    if not mounted(mount, "4m"):
        pytest.skip("mounting a tmpfs is not permitted here; the read-only file test covers permissions")
    try:
        path = mount / "store.sqlite"
        shutil.copy(real_store, path)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        reading_only(path, tmp_path, monkeypatch, capsys)
    finally:
        unmount(mount)


def cell_rows(db: Path) -> dict[str, float]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return dict(connection.execute("SELECT key, estimate FROM cells").fetchall())


def test_a_full_disk_gives_one_sentence_keeps_every_committed_cell_and_resumes(toy, tmp_path):
    mount = tmp_path / "small"
    if not mounted(mount, "256k"):
        pytest.skip("mounting a 256k tmpfs is not permitted here; the injected full disk below covers it")
    try:
        db = mount / "store.sqlite"
        suite = suite_file(tmp_path, seeds="[0, 1, 2, 3]", rhos=str([round(0.02 * i, 2) for i in range(1, 31)]))
        command = [sys.executable, "-m", "harness.cli", "--plugin-file", TOY, "run", str(suite), "--store", str(db),
                   "--no-report"]
        first = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert first.returncode == 2, first.stdout + first.stderr
        said = first.stdout + first.stderr
        assert "Traceback" not in said, said
        errors = [line for line in first.stdout.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "the disk is full" in errors[0], said
        assert "every cell committed before is kept" in errors[0]
        kept = cell_rows(db)
        assert 0 < len(kept) < 120
        subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True, capture_output=True)
        again = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        after = cell_rows(db)
        assert len(after) == 120 and all(after[key] == value for key, value in kept.items())
    finally:
        unmount(mount)


class FullAfter(sqlite3.Connection):
    """A connection whose commits fail as a full disk's do once `allowed` of them have succeeded."""

    allowed = 0

    def commit(self):
        if FullAfter.allowed <= 0:
            raise sqlite3.OperationalError("database or disk is full")
        FullAfter.allowed -= 1
        super().commit()


def test_an_injected_full_disk_at_commit_is_one_sentence_and_exit_2(toy, tmp_path, monkeypatch, capsys):
    db = tmp_path / "full.sqlite"
    Store(db).close()
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: connect(*args, factory=FullAfter, **kwargs))
    FullAfter.allowed = 2 + 3  # the run's row, its lease, then three cells
    code, output = run_main(monkeypatch, capsys, "--plugin-file", TOY, "run", str(suite_file(tmp_path)), "--store",
                          str(db), "--no-report")
    monkeypatch.setattr(sqlite3, "connect", connect)
    assert code == 2 and "the disk is full (database or disk is full)" in one_error(output)
    assert len(cell_rows(db)) == 3
    summary = runner.run(load(suite_file(tmp_path)), Store(db), show_progress=False)
    assert summary.skipped == 3 and summary.statuses == {"ok": 3} and len(cell_rows(db)) == 6


def test_a_second_runner_of_a_run_in_progress_is_refused(tmp_path):
    db = tmp_path / "shared.sqlite"
    suite = suite_file(tmp_path, seeds="[0, 1, 2, 3]", sleep=1.0)  # 8 s of cells: the second starts in ~3
    command = [sys.executable, "-m", "harness.cli", "--plugin-file", TOY, "run", str(suite), "--store", str(db),
               "--no-report"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, leased = time.time() + 120, False
    while not leased and time.time() < deadline and first.poll() is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
                leased = connection.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 1
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    assert leased, "the first runner never took its lease"
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 2 and "Traceback" not in second.stdout + second.stderr
    message = one_error(second.stdout)
    assert f"run 'toy' is in progress in {db} (pid {first.pid} on " in message
    assert "wait for it, or use another --run." in message
    with sqlite3.connect(db) as connection:
        keys = [row[0] for row in connection.execute("SELECT key FROM cells")]
        assert connection.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # released at the end
    assert len(keys) == 8 and len(set(keys)) == 8  # each cell computed once, by the first runner


def test_a_dead_runners_lease_is_taken_over_with_a_note(toy, tmp_path, capsys):
    db = tmp_path / "stale.sqlite"
    suite = load(suite_file(tmp_path))
    runner.run(suite, Store(db), show_progress=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO leases (run, pid, host, since, token) "
                           "VALUES ('toy', ?, ?, '2026-01-01T00:00:00+00:00', 'x')",
                           (dead.pid, os.uname().nodename))
    capsys.readouterr()
    summary = runner.run(suite, Store(db), show_progress=False)
    assert summary.skipped == 6
    note = capsys.readouterr().err
    assert f"was left by pid {dead.pid}" in note and "no longer running; this runner takes it over." in note
