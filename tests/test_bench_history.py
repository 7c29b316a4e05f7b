"""`mi-harness bench --history DIR [--max-drop F]`: each run against the last saved run of its settings."""

import json

import pytest
from cli_in_process import run_main

from plugins.bench import benchmark, history

TINY = ["--steps", "2", "--levels", "1", "--repeats", "1", "--no-small", "--machine-steps", "0"]


@pytest.fixture(autouse=True)
def quick_peak(monkeypatch):
    # the matmul peak takes seconds per kernel and thread count; its value is not what these tests check
    monkeypatch.setattr(benchmark, "matmul_peak", lambda device, threads, size, kernel: 100.0)


def bench(monkeypatch, capsys, folder, *extra: str) -> tuple[int, str]:
    return run_main(monkeypatch, capsys, "bench", *TINY, "--history", str(folder), *extra)


def test_a_run_is_saved_and_the_next_one_is_compared_with_it(monkeypatch, capsys, tmp_path):
    code, first = bench(monkeypatch, capsys, tmp_path)
    assert code == 0, first
    assert f"no earlier run with these settings in {tmp_path}" in first
    (saved,) = tmp_path.glob("bench-*.json")
    kept = json.loads(saved.read_text())
    assert kept["settings"] == {"device": "cpu", "steps": 2, "levels": 1, "repeats": 1, "small_steps": None,
                                "machine_steps": 0}
    assert kept["per_core_ratio"] > 0 and kept["per_machine_ratio"] is None

    code, second = bench(monkeypatch, capsys, tmp_path, "--format", "json")
    assert code == 0, second
    summary = json.loads(second)
    assert summary["last_run"]["file"] == str(saved)
    per_core = summary["last_run"]["changes"]["per_core_ratio"]
    assert per_core["last"] == kept["per_core_ratio"] and per_core["now"] == summary["per_core_ratio"]
    assert per_core["change"] == pytest.approx(per_core["now"] / per_core["last"] - 1)
    assert summary["last_run"]["changes"]["per_machine_ratio"]["change"] is None  # not run either time
    assert len(list(tmp_path.glob("bench-*.json"))) == 2


def test_runs_of_other_settings_are_not_compared(monkeypatch, capsys, tmp_path):
    assert bench(monkeypatch, capsys, tmp_path)[0] == 0
    code, output = run_main(monkeypatch, capsys, "bench", "--steps", "3", *TINY[2:], "--history", str(tmp_path))
    assert code == 0 and "no earlier run with these settings" in output


def test_a_drop_past_max_drop_fails_the_command_and_names_the_number(monkeypatch, capsys, tmp_path):
    assert bench(monkeypatch, capsys, tmp_path)[0] == 0
    (saved,) = tmp_path.glob("bench-*.json")
    kept = json.loads(saved.read_text())
    kept["per_core_ratio"] = 1e6  # a last run far faster than any now: the drop rounds to 100% whatever this run takes
    saved.write_text(json.dumps(kept))
    code, output = bench(monkeypatch, capsys, tmp_path, "--max-drop", "0.2")
    assert code == 1
    assert "slower than the last saved run by more than --max-drop 0.2: per_core_ratio fell 100% (1000000.00 -> " in output
    assert "Traceback" not in output


def test_max_drop_needs_history(monkeypatch, capsys):
    code, output = run_main(monkeypatch, capsys, "bench", *TINY, "--max-drop", "0.2")
    assert code == 2 and "--max-drop compares with a saved run: give --history DIR too." in output


def test_changes_and_drops():
    compared = history.changes({"per_core_ratio": 2.0, "peak_gflops": 100.0, "training_gflops": None},
                               {"per_core_ratio": 1.5, "peak_gflops": 110.0, "training_gflops": 70.0})
    assert compared["per_core_ratio"] == {"last": 2.0, "now": 1.5, "change": -0.25}
    assert compared["peak_gflops"]["change"] == pytest.approx(0.1)
    assert compared["training_gflops"]["change"] is None
    assert history.drops(compared, 0.2) == ["per_core_ratio fell 25% (2.00 -> 1.50)"]
    assert history.drops(compared, 0.3) == []


def test_unreadable_saved_runs_are_passed_over(tmp_path):
    settings = {"device": "cpu", "steps": 2}
    good = history.save(tmp_path, {"per_core_ratio": 1.7}, settings)
    (tmp_path / "bench-99999999T999999999999Z.json").write_text("{not json")  # newest by name
    assert history.last_run(tmp_path, settings)[0] == good
