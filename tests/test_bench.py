"""`mi-harness bench`: its FLOP count is torch's own count, and its baseline is the same protocol as ours."""

import json
import statistics

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness import registry
from harness.api import Budget
from plugins.bench import baseline, benchmark, machine
from plugins.estimators.critics import SeparableCritic


@pytest.mark.parametrize("dims", [(20, 20, 256, 2, 32), (2, 3, 16, 1, 8), (5, 5, 32, 3, 16)])
def test_analytic_flops_equal_torch_flop_counter(dims):
    dim_x, dim_y, hidden, layers, embed = dims
    critic = SeparableCritic(dim_x, dim_y, hidden, layers, embed, "relu")
    with FlopCounterMode(display=False) as counter:
        critic(torch.randn(64, dim_x), torch.randn(64, dim_y)).logsumexp(1).sum().backward()
    assert counter.get_total_flops() == machine.separable_step_flops(64, dim_x, dim_y, hidden, layers, embed)


@pytest.mark.parametrize("rule", ["infonce", "nwj", "smile"])
def test_plain_loop_trains_the_same_critic_to_the_same_value(rule):
    # Same seed, same initial weights, same batches: only the Adam implementation differs
    # (reference vs fused), a float32 rounding difference that stays far below 1e-3 nats in 50 steps.
    task = registry.get("task", "gaussian").instantiate({"dim": 3, "mi": 1.0})
    x, y = (np.asarray(a, dtype=np.float32) for a in task.sample(50 * 32, np.random.default_rng(0)))
    params = {"critic": "separable", "hidden": 32, "layers": 2, "embed_dim": 16, "activation": "relu", "lr": 1e-3,
              "marginals": "raw", "checkpoint_every": 0}
    extra = {"tau": 5.0} if rule == "smile" else {}
    budget = Budget(steps=50, batch_size=32)
    ours = registry.get("estimator", rule).instantiate({**params, **extra}).fit_estimate(x, y, budget, "cpu", 4)
    plain = baseline.plain_loop(rule, x, y, budget, params, 4, torch.device("cpu"))
    assert abs(ours.value - plain) < 1e-3, (ours.value, plain)


def test_bench_runs_and_writes_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "SMALL_TASKS", benchmark.SMALL_TASKS[:2])
    monkeypatch.setattr(benchmark, "matmul_peak", lambda device, threads, size, kernel: 1.0)
    out = tmp_path / "bench.json"
    lines = []
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # the whole-machine comparison needs 2 cores
    report = benchmark.main(steps=4, repeats=1, small_steps=4, machine_steps=3, output=str(out), echo=lines.append)
    saved = json.loads(out.read_text())
    machine = "staircase, whole machine (2 cores)"
    assert {(r["workload"], r["training"]) for r in saved["rows"]} == {
        (w, t) for w in ("staircase", "16 small tasks") for t in ("plain", "alone", "grouped")} | {
        (machine, "plain loop, torch's 2 threads"), (machine, "ours, runner --jobs 2 (start-up included)")}
    assert all(r["seconds"] > 0 for r in report.rows)
    # the runner's workers land on the plain loop's estimates (same cells, seeds and initial weights)
    plain, runner = (r["mean_abs_error"] for r in saved["rows"] if r["workload"] == machine)
    assert abs(plain - runner) < 1e-3
    assert "grouped vs plain loop" in lines[0] and f"{machine}: runner vs plain loop" in lines[0]
    headline = benchmark.headline(report)
    assert headline["per_core_ratio"] == statistics.median(report.ratios["staircase: grouped vs plain loop"])
    assert headline["per_machine_ratio"] == report.ratios[f"{machine}: runner vs plain loop"][0]
    assert headline["small_critics_ratio"] == report.ratios["16 small tasks: grouped vs plain loop"][0]
    assert headline["training_gflops"] > 0 and headline["peak_gflops"] == 1.0
    assert headline["kernel"] in ("torch", "onednn") and json.loads(json.dumps(headline)) == headline


def test_bench_json_is_one_object_on_stdout(monkeypatch, capsys):
    from cli_in_process import run_main

    monkeypatch.setattr(benchmark, "matmul_peak", lambda device, threads, size, kernel: 1.0)
    code, output = run_main(monkeypatch, capsys, "bench", "--format", "json", "--steps", "3", "--repeats", "1",
                            "--no-small", "--machine-steps", "0")
    printed = json.loads(output)
    assert code == 0 and printed["per_core_ratio"] > 0 and printed["per_machine_ratio"] is None
    assert printed["small_critics_ratio"] is None and set(printed) >= {"training_gflops", "peak_gflops", "kernel"}


def test_the_peak_is_the_best_kernel_and_the_better_of_two_measurements(monkeypatch):
    readings = {  # (one thread, all threads) now, then again after the workloads
        "torch.matmul": iter([100.0, 190.0, 104.0, 180.0]),  # MKL's AVX2 kernels on an AMD CPU
        "oneDNN": iter([230.0, 400.0, 226.0, 455.0])}        # AVX-512
    monkeypatch.setattr(benchmark, "peak_kernels", lambda device: dict.fromkeys(readings))
    monkeypatch.setattr(benchmark, "matmul_peak", lambda device, threads, size, kernel: next(readings[kernel]))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    report = benchmark.Report(device="cpu", threads=1)
    benchmark.measure_peaks(report, torch.device("cpu"))
    benchmark.measure_peaks(report, torch.device("cpu"))
    assert report.peak_by_kernel == {"torch.matmul": [104.0, 190.0], "oneDNN": [230.0, 455.0]}
    assert (report.peak_one_thread_gflops, report.peak_all_threads_gflops) == (230.0, 455.0)
    assert "by kernel: torch.matmul 104.0 / 190.0, oneDNN 230.0 / 455.0" in benchmark.render(report)


def test_the_peak_kernels_multiply_alike():
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    for kernel, multiply in machine.peak_kernels(torch.device("cpu")).items():
        torch.testing.assert_close(multiply(a, b), a @ b, rtol=1e-5, atol=1e-4, msg=kernel)
