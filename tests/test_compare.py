"""`mi-harness compare`: regressions beyond noise fail, noise and speed changes do not."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.report.compare import Thresholds, compare


def frame(means, seeds=4, spread=0.02, truth=1.0, wall=1.0, kind="estimation", rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    rows = []
    for label, mean in means.items():
        for seed in range(seeds):
            rows.append({"label": label, "task_label": "gaussian(mi=1)", "n": 1000, "kind": kind, "seed": seed,
                         "true_value": truth, "estimate": mean + spread * rng.standard_normal(),
                         "status": "ok", "wall_s": wall, "steps": 100, "kernel_ms": 1000 * wall})
    return pd.DataFrame(rows)


def marks(table):
    return dict(zip(table["method"], table["accuracy"], strict=True))


def test_identical_runs_are_within_noise_and_pass():
    base = frame({"a": 0.9, "b": 0.8})
    table, failing = compare(base, base.copy(), Thresholds())
    assert not failing and set(marks(table).values()) == {"within noise"}


def test_a_shift_inside_the_seeds_spread_is_noise():
    base = frame({"a": 0.9}, spread=0.2)
    head = frame({"a": 0.96}, spread=0.2, rng_seed=1)
    assert marks(compare(base, head, Thresholds())[0]) == {"a": "within noise"}


def test_a_real_regression_fails_and_an_improvement_passes():
    base = frame({"worse": 0.95, "better": 0.5})
    head = frame({"worse": 0.5, "better": 0.95}, rng_seed=1)
    table, failing = compare(base, head, Thresholds())
    assert failing and marks(table) == {"worse": "worse", "better": "better"}


def test_thresholds_are_configurable():
    base, head = frame({"a": 0.95}), frame({"a": 0.85}, rng_seed=1)
    assert compare(base, head, Thresholds())[1]
    assert not compare(base, head, Thresholds(abs_error=0.2))[1]


def test_speed_is_advisory_unless_asked():
    base, head = frame({"a": 0.9}, wall=1.0), frame({"a": 0.9}, wall=3.0)
    table, failing = compare(base, head, Thresholds())
    assert table["speed"].tolist() == ["slower"] and table["speedup"].iloc[0] == pytest.approx(1 / 3)
    assert not failing and compare(base, head, Thresholds(fail_on_speed=True))[1]


def test_a_group_missing_from_head_fails():
    table, failing = compare(frame({"a": 0.9, "b": 0.9}), frame({"a": 0.9}), Thresholds())
    assert failing and marks(table)["b"] == "missing"


def test_encoder_accuracy_higher_is_better():
    base = frame({"dgi": 80.0}, spread=0.3, truth=82.3, kind="representation")
    up = frame({"dgi": 83.0}, spread=0.3, truth=82.3, kind="representation", rng_seed=1)
    down = frame({"dgi": 77.0}, spread=0.3, truth=82.3, kind="representation", rng_seed=2)
    assert marks(compare(base, up, Thresholds())[0]) == {"dgi": "better"}
    assert marks(compare(base, down, Thresholds())[0]) == {"dgi": "worse"}


def test_cli_exit_code_and_markdown(tmp_path):
    base, head = tmp_path / "base.csv", tmp_path / "head.csv"
    frame({"a": 0.95}).to_csv(base, index=False)
    frame({"a": 0.5}).to_csv(head, index=False)
    summary = tmp_path / "summary.md"
    result = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base), str(head), "-o", str(summary)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "**FAIL**" in result.stdout
    assert "| method" in summary.read_text()
    same = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base), str(base)],
                          capture_output=True, text=True)
    assert same.returncode == 0 and "**OK**" in same.stdout


def test_estimators_that_take_no_steps_and_time_no_kernel_compare_without_a_speed():
    base = frame({"ksg": 0.9}).assign(steps=0, kernel_ms=None)
    table, failing = compare(base, base.copy(), Thresholds())
    assert not failing and table["accuracy"].tolist() == ["within noise"]
