"""`mi-harness bench`: how fast critic training is, against the machine and against a plain loop.

From one run it prints: the machine's float32 matmul peak (one thread, all threads; the best
kernel torch offers, torch.matmul or oneDNN, and the better of a measurement before and one after
the workloads, so a low reading cannot flatter us), the
achieved GFLOP/s of critic training (matmul FLOPs of forward and backward, counted
analytically), and speed ratios against a plain one-critic-at-a-time PyTorch loop of the
reference protocol (Poole et al.'s staircase code: nn.Linear stacks, default Adam, the bound
written inline, `.item()` every step), which is written here as the baseline.

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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import cpu_gemm, registry
from harness.api import Budget
from harness.executors import ProcessExecutor
from harness.grouping import group_method, map_cells
from harness.suite import Cell
from harness.timing import resolve_device
from harness.training import retain_freed_memory

STAIRCASE = {"critic": "separable", "hidden": 256, "layers": 2, "embed_dim": 32, "activation": "relu", "lr": 5e-4}
STAIRCASE_ESTIMATORS = [("infonce", {}), ("nwj", {}), ("smile", {"tau": 5.0})]
STAIRCASE_LEVELS = [2.0, 4.0, 6.0, 8.0, 10.0]
STAIRCASE_SEEDS = [0, 1, 2]
SMALL = {"critic": "separable", "hidden": 16, "layers": 2, "embed_dim": 8, "activation": "relu", "lr": 2e-3}
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
class Timed:
    cpu_s: float
    wall_s: float


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


# ---- FLOPs ------------------------------------------------------------------------------------

def mlp_flops(batch: int, widths: list[int], input_grad: bool) -> float:
    """Matmul FLOPs of forward + backward of an MLP: forward, weight gradients, input gradients.

    The first layer needs no input gradient when the input is data (input_grad False).
    """
    layers = list(zip(widths, widths[1:], strict=False))
    forward = sum(2.0 * batch * i * o for i, o in layers)
    input_grads = sum(2.0 * batch * i * o for k, (i, o) in enumerate(layers) if k > 0 or input_grad)
    return 2 * forward + input_grads


def separable_step_flops(batch: int, dim_x: int, dim_y: int, hidden: int, layers: int, embed_dim: int) -> float:
    """One training step of S = g(x) h(y)^T: both towers, and the score matmul with its two gradients."""
    def tower(dim: int) -> float:
        return mlp_flops(batch, [dim, *[hidden] * layers, embed_dim], input_grad=False)
    return tower(dim_x) + tower(dim_y) + 3 * 2.0 * batch * batch * embed_dim


# ---- timing -----------------------------------------------------------------------------------

def timed(device: torch.device, work: Callable[[], Any]) -> tuple[Any, Timed]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    cpu, wall = time.thread_time(), time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, Timed(time.thread_time() - cpu, time.perf_counter() - wall)


def seconds(t: Timed, device: torch.device) -> float:
    """CPU seconds on CPU (robust to a shared machine), wall seconds on a GPU."""
    return t.cpu_s if device.type == "cpu" else t.wall_s


def peak_kernels(device: torch.device) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """The float32 matmuls torch offers on `device`: on x86 CPUs MKL's may not be the fastest."""
    kernels = {"torch.matmul": lambda a, b: a @ b}
    if device.type == "cpu" and cpu_gemm.onednn_available():
        kernels["oneDNN"] = lambda a, b: cpu_gemm.linear(a, b.mT, None)
    return kernels


def matmul_peak(device: torch.device, threads: int, size: int, kernel: str, budget_s: float = 1.0) -> float:
    """GFLOP/s of a size x size float32 matmul; best of repeated timings (a shared CPU only slows)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    multiply = peak_kernels(device)[kernel]
    try:
        a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
        multiply(a, b)
        best, spent = math.inf, 0.0
        while spent < budget_s or best == math.inf:
            _, t = timed(device, lambda: multiply(a, b))
            # One thread: the thread's CPU time; several: wall time (CPU time would sum the threads).
            took = t.cpu_s if device.type == "cpu" and threads == 1 else t.wall_s
            best, spent = min(best, took), spent + t.wall_s
        return 2.0 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(previous)


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


# ---- the plain reference loop -----------------------------------------------------------------

def _log_mean_exp_offdiag(scores: Tensor) -> Tensor:
    b = scores.shape[0]
    masked = scores - torch.diag(torch.full((b,), math.inf, device=scores.device))
    return masked.logsumexp((0, 1)) - math.log(b * (b - 1))


def _reference_bound(rule: str, scores: Tensor, tau: float = 5.0) -> tuple[Tensor, Tensor]:
    """(objective to maximise, value) as the reference notebooks write them, one matrix at a time."""
    b = scores.shape[0]
    if rule == "infonce":
        value = math.log(b) + (scores.diag() - scores.logsumexp(1)).mean()
        return value, value
    if rule == "nwj":
        value = scores.diag().mean() - (_log_mean_exp_offdiag(scores) - 1.0).exp()
        return value, value
    if rule == "smile":
        js = -F.softplus(-scores.diag()).mean() - (F.softplus(scores).sum() - F.softplus(scores.diag()).sum()) / (
            b * (b - 1))
        dv = scores.diag().mean() - _log_mean_exp_offdiag(scores.clamp(-tau, tau))
        return js, dv
    raise ValueError(f"the plain loop knows infonce, nwj and smile, not {rule!r}")


def plain_loop(rule: str, x: np.ndarray, y: np.ndarray, budget: Budget, params: dict[str, Any], seed: int,
               device: torch.device) -> float:
    """One critic, trained as reference code does; same protocol and same initial weights as ours."""
    torch.manual_seed(seed)

    def tower(dim: int) -> nn.Module:
        widths = [dim, *[params["hidden"]] * params["layers"]]
        blocks: list[nn.Module] = []
        for i, o in zip(widths, widths[1:], strict=False):
            blocks += [nn.Linear(i, o), nn.ReLU()]
        return nn.Sequential(*blocks, nn.Linear(widths[-1], params["embed_dim"])).to(device)

    g, h = tower(x.shape[1]), tower(y.shape[1])
    optimizer = torch.optim.Adam([*g.parameters(), *h.parameters()], lr=params["lr"])
    xs, ys = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    b, steps = budget.batch_size, budget.steps
    streaming = len(x) >= steps * b
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for step in range(steps):
        if streaming:
            xb, yb = xs[step * b: (step + 1) * b], ys[step * b: (step + 1) * b]
        else:
            rows = torch.randint(len(x) // 2, (b,), generator=generator).to(device)
            xb, yb = xs[rows], ys[rows]
        scores = g(xb) @ h(yb).t()
        objective, value = _reference_bound(rule, scores)
        optimizer.zero_grad()
        (-objective).backward()
        optimizer.step()
        estimates.append(value.item())
    if streaming:
        return float(np.mean(estimates[-max(1, steps // 4):]))
    with torch.no_grad():
        half = len(x) // 2
        usable = (len(x) - half) // b * b
        held = [_reference_bound(rule, g(xs[half + i: half + i + b]) @ h(ys[half + i: half + i + b]).t())[1]
                for i in range(0, usable, b)]
    return float(torch.stack(held).mean())


# ---- workloads --------------------------------------------------------------------------------

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
    fit_group = group_method(group[0][0], "mi")
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
    return [Cell(suite="bench", kind="estimation", method=name, method_params={**STAIRCASE, **extra},
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
         echo: Callable[[str], None] = print) -> Report:
    """Run the benchmark and print its table; returns the numbers (also written to `output` as JSON)."""
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
    echo(render(report))
    if output:
        with open(output, "w") as handle:
            json.dump(asdict(report), handle, indent=2)
    return report


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
