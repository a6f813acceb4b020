"""Timing and peak-memory helpers shared by the kernel benchmarks (``benchmarks/kernel_*.py``).

On CUDA: CUDA events around ``repeat`` calls after ``warmup`` calls (median of the
repeats), and the peak of ``torch.cuda.max_memory_allocated`` above what was allocated
before the call. On the CPU (``--cpu-smoke`` runs): wall-clock median, no memory figure.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable

import torch


def measure(fn: Callable[[], object], device: torch.device, *, warmup: int = 3, repeat: int = 10) -> dict:
    """``{"ms": median milliseconds, "peak_mib": extra peak memory or None}`` for ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeat):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop))
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        peak = None
    return {"ms": statistics.median(times), "peak_mib": peak}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"device: CPU smoke run (tiny shapes; figures say nothing about GPU speed), torch {torch.__version__}"


def write_json(path: str | None, payload: dict) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
