"""Timing and memory helpers shared by the benches (min-of-N, synchronised, peak extra bytes)."""

from __future__ import annotations

import math
import platform
import statistics
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


def interleaved_medians(fns, device, repeat, budget=3.0):
    """Median seconds of each of ``fns`` over the rounds of :func:`interleaved_times`."""
    return [statistics.median(ts) for ts in interleaved_times(fns, device, repeat, budget)]


def interleaved_times(fns, device, repeat, budget=3.0):
    """Seconds of each run of each of ``fns``, timed in interleaved rounds (fn0, fn1, ..., fn0, fn1,
    ...) after one warm-up each, for up to ``repeat`` rounds or until ``budget`` s are spent.

    On a shared machine the load changes from one second to the next; timing the functions
    side by side, round after round, exposes them to the same load, so their *ratio* is
    meaningful even when the absolute times drift. The median ignores the rounds another job
    preempted.
    """
    for fn in fns:
        fn()
    sync(device)
    times = [[] for _ in fns]
    spent = 0.0
    for _ in range(max(3, repeat)):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            sync(device)
            dt = time.perf_counter() - t0
            ts.append(dt)
            spent += dt
        if spent > budget and len(times[0]) >= 3:
            break
    return times


def copy_fn(nbytes, device):
    """A float32 copy that reads nbytes / 2 and writes nbytes / 2 (the bandwidth floor of an op
    that moves ``nbytes``)."""
    n = max(1, int(nbytes) // 8)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


# Copy sizes of the stated floors: in cache (2 x 256 KiB: fits a core's L2) and out of cache
# (2 x 256 MiB: beyond any cache of the machines we bench on).
COPY_IN_CACHE_FLOATS = 1 << 16
COPY_OUT_OF_CACHE_FLOATS = 1 << 26


def copy_floors(device, repeat=15):
    """(in-cache, out-of-cache) copy bandwidth in bytes/s (read + write), the median of
    ``repeat`` interleaved measurements of each size."""
    small = copy_fn(8 * COPY_IN_CACHE_FLOATS, device)
    large = copy_fn(8 * COPY_OUT_OF_CACHE_FLOATS, device)
    t_small, t_large = interleaved_medians([small, large], device, repeat, budget=5.0)
    return 8 * COPY_IN_CACHE_FLOATS / t_small, 8 * COPY_OUT_OF_CACHE_FLOATS / t_large


def load_average() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "n/a"


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
