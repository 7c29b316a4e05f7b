"""Which kernel multiplies a grouped layer's large matrices on CPU: torch's matmul or oneDNN's.

torch's float32 matmul on x86 calls MKL, and MKL runs its AVX2 kernels on CPUs that are not
Intel's; oneDNN picks its kernels by instruction set. On a CPU with full-width AVX-512 (AMD Zen 5)
oneDNN multiplies twice as fast: 234 against 105 GFLOP/s on one thread at 1024^3. oneDNN has no
batched float32 matmul in torch, so it runs one call per group member, and a call costs about
20 us: only layers with enough work per member gain. Zen 4 runs AVX-512 as two 256-bit halves:
there oneDNN reaches 102 against MKL's 85 GFLOP/s at 1024^3, and the grouped staircase trains in
0.89x the time with torch's batched matmuls instead (farm-bench pairs, 2026-12-02).

`MI_HARNESS_CPU_GEMM` chooses: `auto` (the default) takes oneDNN exactly where MKL leaves speed
behind, on an AMD CPU with full-width AVX-512 (family 26, Zen 5, or later); `torch` or `onednn` pins
the choice. The rule
reads the machine, never a timing, so every process on one machine makes the same choice and the
same seed gives the same bits in every run (a timed choice flipped between processes under load).
The choice never depends on the group size, so a member's numbers are the same bits alone and in
a group.
"""

from __future__ import annotations

import functools
import time

import torch
from torch import Tensor

from harness.errors import UserError
from plugins.estimators.gemm_choice import chosen_by_user

# rows x in x out of one member's product; smaller ones ran slower through oneDNN one member at a
# time than through one batched matmul (measured at 1M, faster from 4M: 64 x 256 x 256 gains 1.4x).
MIN_WORK = 2**21


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ weight^T + bias through oneDNN (x (M, in), weight (out, in); any strides)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def per_member(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(G, M, in) x (G, out, in)^T [+ bias (G, 1, out)] -> (G, M, out), one oneDNN call per member."""
    return torch.stack([linear(x[g], weight[g], None if bias is None else bias[g, 0]) for g in range(len(x))])


def use_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether the grouped product of x (G, M, in) and weight (G, out, in) runs through oneDNN."""
    work = x.shape[1] * weight.shape[1] * weight.shape[2]
    return x.device.type == "cpu" and x.dtype == torch.float32 and work >= MIN_WORK and onednn_chosen()


@functools.cache
def onednn_chosen() -> bool:
    choice = chosen_by_user()
    if choice == "onednn" and not onednn_available():
        raise UserError("MI_HARNESS_CPU_GEMM=onednn, but this torch build has no oneDNN; use 'torch' or 'auto'.")
    if choice != "auto":
        return choice == "onednn"
    return (onednn_available() and cpu_capability() == "AVX512" and cpu_vendor() == "AuthenticAMD"
            and cpu_family() >= FULL_WIDTH_AVX512_FAMILY)


# AMD's CPU family 26 (0x1A) is Zen 5, the first with 512-bit AVX-512 datapaths.
FULL_WIDTH_AVX512_FAMILY = 26


def cpu_capability() -> str:
    """The widest instruction set torch's own CPU kernels use here: "AVX512", "AVX2", ..."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_vendor() -> str:
    """The CPU's vendor id ("AuthenticAMD", "GenuineIntel"), or "" where /proc/cpuinfo does not say."""
    return _cpuinfo().get("vendor_id", "")


def cpu_family() -> int:
    """The CPU's family number (25 for AMD Zen 3 and 4, 26 for Zen 5), or 0 where /proc/cpuinfo does not say."""
    family = _cpuinfo().get("cpu family", "")
    return int(family) if family.isdigit() else 0


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def onednn_speedup(size: int = 512, repeats: int = 5) -> float:
    """How many times faster oneDNN multiplies two size x size float32 matrices than torch's matmul
    (`mi-harness bench` reports it; the kernel choice does not use it)."""
    generator = torch.Generator().manual_seed(0)  # the global generator seeds training: leave it alone
    a, b = (torch.randn(size, size, generator=generator) for _ in range(2))
    return _best_time(lambda: a @ b.T, repeats) / _best_time(lambda: linear(a, b, None), repeats)


def _best_time(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best
