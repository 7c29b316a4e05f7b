"""The workloads of `mi-harness bench`: how fast critic training is, against the machine and a plain loop.

From one run it prints: the machine's float32 matmul peak (one thread, all threads; the best
kernel torch offers, torch.matmul or oneDNN, and the better of a measurement before and one after
the workloads, so a low reading cannot flatter us), the
achieved GFLOP/s of critic training (matmul FLOPs of forward and backward, counted
analytically), and speed ratios against a plain one-critic-at-a-time PyTorch loop of the
reference protocol (Poole et al.'s staircase code: nn.Linear stacks, default Adam, `.item()`
every step), written beside this module as the baseline (`plugins.bench.baseline`).

Two workloads: the staircase critic (separable, hidden 256, batch 64, d = 20; compute-bound)
for InfoNCE, NWJ and SMILE x 3 seeds, and 16 Beyond-Normal-style tasks with a small critic
(overhead-bound), trained one by one and as one group. Baseline and ours are interleaved and
repeated so that a shared machine slows both alike; on CPU the times are the thread's CPU
seconds (what the work cost, whoever else runs) with wall seconds beside them.

On CPU a third comparison is per machine rather than per core: the staircase cells run as
`mi-harness run --jobs <cores>` runs them (grouped units in spawned one-thread workers, worker
start-up included) against the plain loop as reference code runs by default (one process,
torch's default intra-op threads), both in wall seconds, against the all-threads matmul peak.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import registry
from harness.api import Budget
from harness.cells import Cell, group_fit
from harness.executors import ProcessExecutor
from harness.grouping import map_cells
from harness.timing import resolve_device
from harness.training import retain_freed_memory
from plugins.bench import history as saved_runs
from plugins.bench.baseline import plain_loop
from plugins.bench.machine import Timed, matmul_peak, peak_kernels, seconds, separable_step_flops, timed
from plugins.estimators import cpu_gemm

# Both protocols as the plain loop trains them: raw marginals, the last critic, no interval to compute.
PLAIN = {"marginals": "raw", "checkpoint_every": 0, "interval_resamples": 0}
STAIRCASE = {"critic": "separable", "hidden": 256, "layers": 2, "embed_dim": 32, "activation": "relu", "lr": 5e-4,
             **PLAIN}
STAIRCASE_ESTIMATORS = [("infonce", {}), ("nwj", {}), ("smile", {"tau": 5.0})]
STAIRCASE_LEVELS = [2.0, 4.0, 6.0, 8.0, 10.0]
STAIRCASE_SEEDS = [0, 1, 2]
SMALL = {"critic": "separable", "hidden": 16, "layers": 2, "embed_dim": 8, "activation": "relu", "lr": 2e-3, **PLAIN}
SMALL_BATCH, SMALL_SAMPLES = 64, 5000
_BASE = {"name": "multinormal_dense", "params": {"dim_x": 2, "dim_y": 2, "correlation": 0.8}}
SMALL_TASKS = [  # 2 x 2 tasks in the spirit of Czyz et al. (2023), Beyond Normal
    ("multinormal_dense", {"dim_x": 2, "dim_y": 2, "correlation": 0.5}),
    ("multinormal_dense", {"dim_x": 2, "dim_y": 2, "correlation": 0.8}),
    ("multinormal_sparse", {"dim_x": 2, "dim_y": 2, "pairs": 1, "strength": 2.0}),
    ("multinormal_sparse", {"dim_x": 2, "dim_y": 2, "pairs": 2, "strength": 1.0}),
    ("gaussian", {"dim": 2, "mi": 0.5}),
    ("gaussian", {"dim": 2, "mi": 1.5}),
    ("student_t", {"dim_x": 2, "dim_y": 2, "dof": 10.0, "pairs": 2}),
    ("student_t", {"dim_x": 2, "dim_y": 2, "dof": 3.0, "pairs": 2}),
    ("student_t", {"dim_x": 2, "dim_y": 2, "dof": 5.0, "pairs": 1}),
    *[(name, {"base": _BASE}) for name in ("half_cube", "asinh", "cube", "bimodal", "normal_cdf", "wiggly", "spiral")],
]


@dataclass
class Report:
    device: str
    threads: int
    peak_one_thread_gflops: float = math.nan
    peak_all_threads_gflops: float = math.nan
    peak_by_kernel: dict[str, list[float]] = field(default_factory=dict)  # kernel: [one thread, all threads]
    rows: list[dict[str, Any]] = field(default_factory=list)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)  # headline numbers that fell past --max-drop since the last run


def measure_peaks(report: Report, device: torch.device) -> None:
    """Raise the report's peaks to what the machine reaches now, with each kernel (one thread, and all
    threads on CPU); the peak is the best kernel's."""
    size = 1024 if device.type == "cpu" else 8192
    thread_counts = [1, os.cpu_count() or 1] if device.type == "cpu" else [1]
    for kernel in peak_kernels(device):
        readings = [matmul_peak(device, threads, size, kernel) for threads in thread_counts]
        before = report.peak_by_kernel.get(kernel, [0.0] * len(readings))
        report.peak_by_kernel[kernel] = [max(now, then) for now, then in zip(readings, before, strict=True)]
    report.peak_one_thread_gflops = max(peaks[0] for peaks in report.peak_by_kernel.values())
    if device.type == "cpu":
        report.peak_all_threads_gflops = max(peaks[1] for peaks in report.peak_by_kernel.values())


def _members(estimators: list[tuple[str, dict[str, Any]]], tasks: list[tuple[str, dict[str, Any]]],
             seeds: list[int], n: int, critic: dict[str, Any], standardize: bool = False
             ) -> list[tuple[Any, np.ndarray, np.ndarray, int, str, float]]:
    out = []
    for task_name, task_params in tasks:
        task = registry.get("task", task_name).instantiate(task_params)
        for seed in seeds:
            x, y = task.sample(n, np.random.default_rng(seed))
            if standardize:  # per dimension, as Beyond Normal does
                x, y = ((a - a.mean(axis=0)) / a.std(axis=0) for a in (x, y))
            x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
            for name, extra in estimators:
                estimator = registry.get("estimator", name).instantiate({**critic, **extra})
                out.append((estimator, x, y, seed, name, task.ground_truth("mi").value))
    return out


def compare_workload(report: Report, label: str, members: list, budget: Budget, params: dict[str, Any],
                     device: torch.device, repeats: int, flops_per_step: float, alone: bool) -> None:
    """Plain loop vs ours (grouped, and one by one if `alone`), interleaved `repeats` times."""
    group = [(estimator, x, y, seed) for estimator, x, y, seed, _, _ in members]
    fit_group = group_fit(group[0][0], "mi")
    total_flops = flops_per_step * budget.steps * len(members)
    warm = Budget(steps=2, batch_size=budget.batch_size)  # first calls pay one-time costs (allocators, CUDA context)
    plain_loop(members[0][4], members[0][1], members[0][2], warm, params, 0, device)
    members[0][0].fit_estimate(members[0][1], members[0][2], warm, str(device), 0)
    fit_group(group[:2], warm, str(device))
    runs: dict[str, list[Timed]] = {"plain": [], "alone": [], "grouped": []}
    values: dict[str, list[float]] = {}
    for _ in range(repeats):
        values["plain"], t = timed(device, lambda: [plain_loop(rule, x, y, budget, params, seed, device)
                                                    for _, x, y, seed, rule, _ in members])
        runs["plain"].append(t)
        if alone:
            values["alone"], t = timed(device, lambda: [e.fit_estimate(x, y, budget, str(device), s).value
                                                        for e, x, y, s in group])
            runs["alone"].append(t)
        estimates, t = timed(device, lambda: fit_group(group, budget, str(device)))
        values["grouped"] = [e.value for e in estimates]
        runs["grouped"].append(t)
    truths = [truth for *_, truth in members]
    for name, times in runs.items():
        if not times:
            continue
        best = min(seconds(t, device) for t in times)
        report.rows.append({
            "workload": label, "training": name, "members": len(members), "steps": budget.steps,
            "seconds": best, "wall_s": min(t.wall_s for t in times),
            "member_steps_per_s": budget.steps * len(members) / best,
            "gflops": total_flops / best / 1e9 if flops_per_step else math.nan,
            "mean_abs_error": float(np.mean(np.abs(np.subtract(values[name], truths)))),
        })
    for name in ("alone", "grouped"):
        if runs[name]:
            report.ratios[f"{label}: {name} vs plain loop"] = [
                seconds(p, device) / seconds(o, device) for p, o in zip(runs["plain"], runs[name], strict=True)]
    if runs["alone"]:
        report.ratios[f"{label}: grouped vs one by one"] = [
            seconds(a, device) / seconds(g, device) for a, g in zip(runs["alone"], runs["grouped"], strict=True)]
    gap = max(abs(a - b) for a, b in zip(values["grouped"], values["alone" if alone else "plain"], strict=True))
    report.notes.append(f"{label}: largest |grouped - {'one by one' if alone else 'plain'}| estimate "
                        f"difference {gap:.2e} nats")


def staircase_tasks(levels: int) -> list[tuple[str, dict[str, Any]]]:
    return [("staircase", {"mi": mi, "dim": 20}) for mi in STAIRCASE_LEVELS[:levels]]


def staircase_cells(steps: int, levels: int) -> list[Cell]:
    """The bench's staircase members as suite cells, in `_members`' order (the runner samples the data)."""
    return [Cell(suite="bench", study="estimation", method=name, method_params={**STAIRCASE, **extra},
                 data=task, data_params=params, seed=seed, n=steps * 64, budget=Budget(steps=steps, batch_size=64),
                 device="cpu", method_label=name, data_label=f"staircase {params['mi']:g}")
            for task, params in staircase_tasks(levels) for seed in STAIRCASE_SEEDS
            for name, extra in STAIRCASE_ESTIMATORS]


def machine_workload(report: Report, steps: int, levels: int, repeats: int, flops_per_step: float,
                     jobs: int) -> None:
    """Per machine: the runner with `jobs` one-thread workers vs the plain loop on torch's default threads."""
    label = f"staircase, whole machine ({jobs} cores)"
    budget, cells = Budget(steps=steps, batch_size=64), staircase_cells(steps, levels)
    members = _members(STAIRCASE_ESTIMATORS, staircase_tasks(levels), STAIRCASE_SEEDS, steps * 64, STAIRCASE)
    runs: dict[str, list[float]] = {"plain": [], "runner": []}
    values: dict[str, list[float]] = {}
    for _ in range(repeats):
        torch.set_num_threads(jobs)
        try:
            values["plain"], t = timed(torch.device("cpu"), lambda: [
                plain_loop(rule, x, y, budget, STAIRCASE, seed, torch.device("cpu"))
                for _, x, y, seed, rule, _ in members])
        finally:
            torch.set_num_threads(1)
        runs["plain"].append(t.wall_s)
        results, t = timed(torch.device("cpu"), lambda: {cell.key: result for cell, result
                                                         in map_cells(ProcessExecutor(jobs), cells)})
        values["runner"] = [results[cell.key].estimate for cell in cells]
        runs["runner"].append(t.wall_s)
    truths = [truth for *_, truth in members]
    total_flops = flops_per_step * steps * len(cells)
    for name, training in (("plain", f"plain loop, torch's {jobs} threads"),
                           ("runner", f"ours, runner --jobs {jobs} (start-up included)")):
        best = min(runs[name])
        report.rows.append({
            "workload": label, "training": training, "members": len(cells), "steps": steps, "seconds": best,
            "wall_s": best, "member_steps_per_s": steps * len(cells) / best, "gflops": total_flops / best / 1e9,
            "peak": "all", "mean_abs_error": float(np.mean(np.abs(np.subtract(values[name], truths))))})
    report.ratios[f"{label}: runner vs plain loop"] = [p / o for p, o in zip(runs["plain"], runs["runner"],
                                                                             strict=True)]


def main(device: str = "cpu", steps: int = 200, levels: int = 1, repeats: int = 2, small_steps: int = 300,
         small: bool = True, machine_steps: int = 2000, output: str | None = None,
         echo: Callable[[str], None] = print, fmt: str = "text", history: str | None = None,
         max_drop: float | None = None) -> Report:
    """Run the benchmark and print its table (or, fmt "json", `headline` as one JSON object); returns the
    numbers (also written to `output` as JSON). With `history` (a folder), the headline is compared with the
    last run saved there under the same settings and this run is saved beside it; a headline number that fell
    by more than `max_drop` (a fraction) lands in the report's `drops`."""
    torch_device = resolve_device(device)
    torch.set_num_threads(1)
    retain_freed_memory()  # the plain loop gets the same allocator as ours
    report = Report(device=_describe(torch_device), threads=1)
    measure_peaks(report, torch_device)
    if torch_device.type == "cpu":
        report.notes.append("large grouped layers multiply on CPU with "
                            + ("oneDNN" if cpu_gemm.onednn_chosen() else "torch.matmul")
                            + f" (MI_HARNESS_CPU_GEMM={cpu_gemm.chosen_by_user()})")

    p = STAIRCASE
    budget = Budget(steps=steps, batch_size=64)
    members = _members(STAIRCASE_ESTIMATORS, staircase_tasks(levels), STAIRCASE_SEEDS, steps * 64, p)
    flops = separable_step_flops(64, 20, 20, p["hidden"], p["layers"], p["embed_dim"])
    report.notes.append(f"staircase critic: {flops / 1e6:.1f} MFLOP of matmuls per training step")
    compare_workload(report, "staircase", members, budget, p, torch_device, repeats, flops, alone=True)
    jobs = os.cpu_count() or 1
    if torch_device.type == "cpu" and machine_steps and jobs > 1:
        machine_workload(report, machine_steps, levels, repeats, flops, jobs)
    if small:
        budget = Budget(steps=small_steps, batch_size=SMALL_BATCH)
        members = _members([("infonce", {})], SMALL_TASKS, [0], SMALL_SAMPLES, SMALL, standardize=True)
        flops = separable_step_flops(SMALL_BATCH, 2, 2, SMALL["hidden"], SMALL["layers"], SMALL["embed_dim"])
        compare_workload(report, "16 small tasks", members, budget, SMALL, torch_device, repeats, flops, alone=True)
    measure_peaks(report, torch_device)  # again: a peak measured low would flatter every % of peak
    summary, text = headline(report), render(report)
    if history:
        settings = {"device": torch_device.type, "steps": steps, "levels": levels, "repeats": repeats,
                    "small_steps": small_steps if small else None, "machine_steps": machine_steps}
        text += "\n\n" + _against_last_run(report, summary, Path(history), settings, max_drop)
    echo(json.dumps(summary) if fmt == "json" else text)
    if output:
        with open(output, "w") as handle:
            json.dump(asdict(report), handle, indent=2)
    return report


def _against_last_run(report: Report, summary: dict[str, Any], folder: Path, settings: dict[str, Any],
                      max_drop: float | None) -> str:
    """Compare `summary` with the last saved run of `settings` (adding `last_run` to it), save it, and say so."""
    found = saved_runs.last_run(folder, settings)
    path = saved_runs.save(folder, summary, settings)
    summary["saved"] = str(path)
    if found is None:
        return f"no earlier run with these settings in {folder}; this one is saved as {path.name}"
    compared = saved_runs.changes(found[1], summary)
    summary["last_run"] = {"file": str(found[0]), "changes": compared}
    if max_drop is not None:
        report.drops = saved_runs.drops(compared, max_drop)
    return saved_runs.render(compared, found[0]) + f"\n\nthis run is saved as {path.name}"


def headline(report: Report) -> dict[str, Any]:
    """The numbers CI and scripts read: the median ratios against the plain loop (None where a workload did
    not run), the staircase's grouped training GFLOP/s, the one-thread matmul peak and the kernel, with the
    whole report beside them."""
    def median(name: str) -> float | None:
        ratios = report.ratios.get(name)
        return statistics.median(ratios) if ratios else None

    grouped = [r["gflops"] for r in report.rows if r["workload"] == "staircase" and r["training"] == "grouped"]
    machine = next((name for name in report.ratios if name.endswith(": runner vs plain loop")), "")
    return {"per_core_ratio": median("staircase: grouped vs plain loop"), "per_machine_ratio": median(machine),
            "small_critics_ratio": median("16 small tasks: grouped vs plain loop"),
            "training_gflops": grouped[0] if grouped else None, "peak_gflops": report.peak_one_thread_gflops,
            "kernel": ("onednn" if cpu_gemm.onednn_chosen() else "torch") if report.device.startswith("cpu")
            else "cuda", "report": asdict(report)}


def render(report: Report) -> str:
    lines = [f"device: {report.device}; training on {report.threads} thread(s)",
             f"matmul peak (float32, the best kernel): {report.peak_one_thread_gflops:.1f} GFLOP/s"
             + (f" on one thread, {report.peak_all_threads_gflops:.1f} GFLOP/s on all threads"
                if math.isfinite(report.peak_all_threads_gflops) else "")
             + "; by kernel: " + ", ".join(f"{kernel} " + " / ".join(f"{p:.1f}" for p in peaks)
                                           for kernel, peaks in report.peak_by_kernel.items()), "",
             "| workload | training | critics | steps | s (best) | wall s | critic-steps/s | GFLOP/s | "
             "% of peak | mean abs error (nats) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        peak = report.peak_all_threads_gflops if r.get("peak") == "all" else report.peak_one_thread_gflops
        lines.append(f"| {r['workload']} | {r['training']} | {r['members']} | {r['steps']} | {r['seconds']:.2f} | "
                     f"{r['wall_s']:.2f} | {r['member_steps_per_s']:.0f} | {r['gflops']:.1f} | "
                     f"{100 * r['gflops'] / peak:.0f}% | {r['mean_abs_error']:.3f} |")
    if any(r.get("peak") == "all" for r in report.rows):
        lines.append("(whole-machine rows: wall seconds, % of the all-threads peak)")
    lines += ["", "speed ratios (each repeat; higher is faster):"]
    for name, ratios in report.ratios.items():
        lines.append(f"  {name}: median {statistics.median(ratios):.2f}x  ("
                     + ", ".join(f"{r:.2f}" for r in ratios) + ")")
    lines += ["", *report.notes]
    return "\n".join(lines)


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores visible; seconds are this thread's CPU time)"
