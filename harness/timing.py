"""Device choice and step timing: CUDA events on GPU, perf_counter on CPU."""

from __future__ import annotations

import resource
import time

import torch

from harness.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N', checked against what this machine has."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UserError(f"device {name!r} is not a device name; use 'cpu', 'cuda' or 'cuda:N'.") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but this machine has no CUDA GPU; use 'cpu'.")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) here.")
    elif device.type != "cpu":
        raise UserError(f"device {name!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'.")
    return device


class StepTimer:
    """Times each training step's forward and backward.

    On CUDA an event pair brackets each step; the events are read once at the end (one
    synchronisation), so timing does not stall the GPU queue. On CPU, perf_counter.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._cpu_seconds = 0.0
        self._started = 0.0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def start(self) -> None:
        if self.cuda:
            begin = torch.cuda.Event(enable_timing=True)
            begin.record()
            self._events.append((begin, torch.cuda.Event(enable_timing=True)))
        else:
            self._started = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            self._events[-1][1].record()
        else:
            self._cpu_seconds += time.perf_counter() - self._started

    def summary(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            step_ms = sum(begin.elapsed_time(end) for begin, end in self._events)
            peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return {"kernel_ms": step_ms, "peak_mem_mb": peak_mb}
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"kernel_ms": 1000.0 * self._cpu_seconds, "peak_mem_mb": peak_mb}
