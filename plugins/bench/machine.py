"""What the machine can do and what the work costs: the float32 matmul peak, matmul FLOPs of
critic training counted analytically, and timing that a shared machine cannot flatter."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from plugins.estimators import cpu_gemm


@dataclass
class Timed:
    cpu_s: float
    wall_s: float


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
