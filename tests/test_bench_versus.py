"""`mi-harness bench --versus-reference`: ours on the Beyond-Normal core tasks, and the reference's worker contract.

bmi (the reference package) is not installed here: the comparison runs without it, the errors for an
environment without it are checked against real interpreters, and the worker's file format and result lines
are checked through its own functions. The real comparison is docs/performance.md#against-the-reference-package.
"""

import ast
import importlib.util
import json
import math
import os
import stat
import sys

import numpy as np
import pytest

from harness import registry
from harness.errors import UserError
from plugins.bench import reference_worker, versus

NO_BMI = importlib.util.find_spec("bmi") is None


def run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from cli_in_process import run_main

    monkeypatch.delenv(versus.REFERENCE_ENV, raising=False)
    return run_main(monkeypatch, capsys, "bench", "--versus-reference", *args)


def test_without_a_reference_ours_runs_and_its_mae_is_the_rows_mean_error(monkeypatch, capsys, tmp_path):
    out = tmp_path / "versus.json"
    code, output = run(monkeypatch, capsys, "--tasks", "2", "--samples", "300", "-o", str(out))
    assert code == 0, output
    summary = json.loads(out.read_text())["versus_reference"]
    rows = summary["tasks"]
    expected = [(label, registry.get("task", name).instantiate(params).ground_truth("mi").value)
                for label, name, params in versus.target_tasks()[:2]]
    assert [r["task"] for r in rows] == [label for label, _ in expected]
    assert [r["truth"] for r in rows] == pytest.approx([truth for _, truth in expected])
    assert all(math.isfinite(r["ours"]) and r["ours_cpu_s"] > 0 and r["reference"] is None for r in rows)
    assert summary["ours_mae"] == pytest.approx(np.mean([abs(r["ours"] - r["truth"]) for r in rows]))
    assert (summary["n"], summary["seed"], summary["ours_failed"]) == (300, versus.DEFAULT_SEED, 0)
    for key in ("reference_mae", "error_ratio", "time_ratio", "time_ratio_median", "wall_ratio", "wall_ratio_median"):
        assert summary[key] is None, key
    table = [line for line in output.splitlines() if line.startswith("|")]
    assert table[0] == "| task | true MI | ours | ours CPU s |" and len(table) == 2 + len(rows)
    for line, row in zip(table[2:], rows, strict=True):
        assert line.startswith(f"| {row['task']} | {row['truth']:.3f} | {row['ours']:.3f} |")
    assert f"- MAE ours: {summary['ours_mae']:.4f} nats" in output
    assert "--reference-python" in output and "benchmark-mi" in output  # how to add the reference


def test_json_is_one_object_on_stdout(monkeypatch, capsys):
    code, output = run(monkeypatch, capsys, "--tasks", "1", "--samples", "200", "--seed", "3", "--format", "json")
    summary = json.loads(output)["versus_reference"]
    assert code == 0 and summary["seed"] == 3 and len(summary["tasks"]) == 1
    assert summary["reference_mae"] is None and summary["error_ratio"] is None and summary["ours_mae"] >= 0


def one_sentence_error(code: int, output: str, *words: str) -> None:
    assert code == 2, output
    assert output.startswith("error:") and output.strip().count("\n") == 0, output
    assert "Traceback" not in output and "ours 1/" not in output  # refused before ours ran
    for word in words:
        assert word in output, (word, output)


def test_a_missing_interpreter_is_one_sentence(monkeypatch, capsys, tmp_path):
    missing = str(tmp_path / "nowhere" / "python")
    code, output = run(monkeypatch, capsys, "--reference-python", missing, "--tasks", "1")
    one_sentence_error(code, output, missing, "no such file", "benchmark-mi")


def test_a_folder_or_a_file_that_cannot_run_is_one_sentence(monkeypatch, capsys, tmp_path):
    code, output = run(monkeypatch, capsys, "--reference-python", str(tmp_path), "--tasks", "1")
    one_sentence_error(code, output, str(tmp_path), "folder", "benchmark-mi")
    plain = tmp_path / "python"
    plain.write_text("not a program\n")
    code, output = run(monkeypatch, capsys, "--reference-python", str(plain), "--tasks", "1")
    one_sentence_error(code, output, str(plain), "not executable", "benchmark-mi")
    plain.chmod(plain.stat().st_mode | stat.S_IXUSR)  # executable, but no interpreter (exec format error)
    code, output = run(monkeypatch, capsys, "--reference-python", str(plain), "--tasks", "1")
    one_sentence_error(code, output, str(plain), "benchmark-mi")


@pytest.mark.skipif(not NO_BMI, reason="this environment has bmi")
def test_an_environment_without_bmi_is_one_sentence(monkeypatch, capsys):
    code, output = run(monkeypatch, capsys, "--reference-python", sys.executable, "--tasks", "1")
    one_sentence_error(code, output, sys.executable, "cannot import bmi", "No module named 'bmi'",
                       f"{sys.executable} -m pip install benchmark-mi")


@pytest.mark.skipif(not NO_BMI, reason="this environment has bmi")
def test_the_environment_variable_names_the_reference(monkeypatch, capsys):
    from cli_in_process import run_main

    monkeypatch.setenv(versus.REFERENCE_ENV, sys.executable)
    code, output = run_main(monkeypatch, capsys, "bench", "--versus-reference", "--tasks", "1")
    one_sentence_error(code, output, sys.executable, "cannot import bmi")


def test_options_of_the_comparison_need_the_flag_and_the_speed_options_do_not_mix(monkeypatch, capsys):
    from cli_in_process import run_main

    code, output = run_main(monkeypatch, capsys, "bench", "--tasks", "2", "--seed", "1")
    one_sentence_error(code, output, "--seed", "--tasks", "only with --versus-reference")
    code, output = run(monkeypatch, capsys, "--steps", "10")
    one_sentence_error(code, output, "--steps", "speed workloads")
    code, output = run(monkeypatch, capsys, "--reference-python", sys.executable, "--samples", "100")
    one_sentence_error(code, output, "--samples 100", "512")


@pytest.mark.skipif(not NO_BMI, reason="this environment has bmi")
def test_a_worker_that_dies_is_reported_with_its_last_stderr_lines():
    samples = [{"task": "a", "truth": 0.1, "x": np.zeros((4, 1), np.float32), "y": np.ones((4, 1), np.float32)}]
    with pytest.raises(UserError) as raised:  # the real worker, under an interpreter that has no bmi
        versus.run_reference(sys.executable, samples, 7, lambda line: None)
    message = str(raised.value)
    assert "stopped after 0 of 1 tasks" in message and "No module named 'bmi'" in message
    assert sys.executable in message


def test_the_samples_file_holds_the_arrays_labels_and_seed(tmp_path):
    rng = np.random.default_rng(0)
    tasks = [("Normal 2x2 (dense)", rng.normal(size=(5, 2)), rng.normal(size=(5, 2))),
             ("Swiss roll 2 × 1", rng.normal(size=(5, 2)), rng.normal(size=(5, 1)))]
    path = str(tmp_path / "samples.npz")
    reference_worker.write_samples(path, 7, tasks)
    seed, read = reference_worker.read_samples(path)
    assert seed == 7 and [label for label, _, _ in read] == [label for label, _, _ in tasks]
    for (_, x, y), (_, x2, y2) in zip(tasks, read, strict=True):
        assert x2.dtype == y2.dtype == np.float32
        np.testing.assert_array_equal(x2, x.astype(np.float32))
        np.testing.assert_array_equal(y2, y.astype(np.float32))


def test_result_lines_are_what_the_harness_reads():
    line = reference_worker.result_line("task 1", 0.25, 3.5, 3.6, 750)
    assert versus.parse_result(line) == {"task": "task 1", "value": 0.25, "cpu_s": 3.5, "wall_s": 3.6, "steps": 750}
    assert versus.parse_result(reference_worker.result_line("t", float("nan"), 1.0, 1.0))["value"] is None
    assert json.loads(reference_worker.result_line("t", float("inf"), 1.0, 1.0))["value"] is None
    for other in ("", "MI test: 0.25 (step=250)", "[1, 2]", '{"task": "t"}'):
        assert versus.parse_result(other) is None


def test_the_worker_limits_threads_and_imports_only_stdlib_numpy_and_bmi():
    env = reference_worker.one_thread_env({"XLA_FLAGS": "--xla_dump_to=/tmp/x", "OMP_NUM_THREADS": "8"})
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=/tmp/x ") and "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert env["OMP_NUM_THREADS"] == "1" and env["JAX_PLATFORMS"] == "cpu"
    assert reference_worker.one_thread_env(env) == env  # applied twice, the flags are not repeated
    tree = ast.parse(open(reference_worker.__file__).read())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots - set(sys.stdlib_module_names) == {"numpy", "bmi"}
    assert reference_worker.main(["reference_worker.py"]) == 2  # usage


def test_the_summary_ratios_come_from_the_rows():
    samples = [{"task": t, "truth": 1.0} for t in "ab"]
    ours = [{"value": 0.9, "cpu_s": 2.0, "wall_s": 2.0, "flags": []}, {"value": 1.2, "cpu_s": 4.0, "wall_s": 4.0,
                                                                        "flags": []}]
    reference = [{"task": "a", "value": 0.7, "cpu_s": 10.0, "wall_s": 8.0, "steps": 500},
                 {"task": "b", "value": None, "cpu_s": 30.0, "wall_s": 24.0, "steps": 10}]
    summary = versus.summarise(samples, ours, reference, 5000, 7, {"bmi": "0.1.3", "jax": "0.4.30"})
    assert summary["ours_mae"] == pytest.approx(0.15) and summary["reference_mae"] == pytest.approx(0.3)
    assert summary["error_ratio"] == pytest.approx(2.0) and summary["reference_failed"] == 1
    assert summary["time_ratio"] == pytest.approx(40 / 6) and summary["time_ratio_median"] == pytest.approx(6.25)
    assert summary["wall_ratio"] == pytest.approx(32 / 6) and summary["wall_ratio_median"] == pytest.approx(5.0)
    text = versus.render(summary)
    assert "| task | true MI | ours | reference | ours CPU s | reference CPU s |" in text
    assert "| b | 1.000 | 1.200 | – | 4.00 | 30.00 |" in text and "(1 task(s) without an estimate)" in text
    assert "error ratio (reference MAE / ours MAE): 2.00" in text and "warning: reference used 1.25" in text
    assert "benchmark-mi 0.1.3, jax 0.4.30" in text


def test_the_worker_ships_beside_the_comparison():
    assert os.path.dirname(versus.WORKER) == os.path.dirname(versus.__file__) and versus.WORKER.is_file()
