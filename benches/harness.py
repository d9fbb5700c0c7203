"""Timing and memory helpers shared by the benches (min-of-N, synchronised, peak extra bytes)."""

from __future__ import annotations

import math
import platform
import time

import torch

import diffrep


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, device, repeat, budget=2.0):
    """Min of up to ``repeat`` runs after one warm-up, stopping early once ``budget`` s are spent."""
    fn()
    sync(device)
    best, spent = math.inf, 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return best


def peak_extra_bytes(fn, device):
    """Peak memory allocated above the starting level while ``fn`` runs (CUDA: the caching
    allocator's counters; CPU: the torch profiler's allocation events replayed in time order)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak, cur = 0, 0
    for ev in sorted(prof.events(), key=lambda e: e.time_range.start):
        cur += ev.cpu_memory_usage
        peak = max(peak, cur)
    return peak


def banner(device, extra: str = "") -> str:
    """The first line every bench prints: versions, machine, threads and device (results record it)."""
    where = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else f"threads={torch.get_num_threads()}"
    return (f"# diffrep {diffrep.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
            f"{where}, device={device}" + (f"; {extra}" if extra else ""))
