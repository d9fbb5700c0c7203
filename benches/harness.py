"""Timing and memory helpers shared by the benches (interleaved medians, synchronised, peak extra bytes), their
argument types (a bad size is a usage error, not a traceback deep in the first kernel) and the target lines."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch

import diffrep


def parse_device(parser, value: str, *, native: bool = False) -> torch.device:
    """``--device VALUE`` as a torch.device, or the parser's usage error (exit 2) saying why it cannot run here:
    a name torch does not know, CUDA on a machine where torch sees no GPU (a CPU-only build, no driver) or,
    with ``native`` (a bench of diffrep's native kernels), a diffrep whose ``_cuda`` module cannot run on this
    GPU (not built, no kernel image for its architecture: the reason ``diffrep info`` gives). Before, most
    benches met the missing GPU deep inside their first CUDA call, as torch's "Torch not compiled with CUDA
    enabled" traceback, some only after minutes of CPU rows."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        parser.error(f"--device {value!r}: {exc}")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {value!r}: the benches run on 'cpu' or 'cuda'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
            parser.error(f"--device {value}: no CUDA device is visible ({why})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            parser.error(f"--device {value}: torch sees {torch.cuda.device_count()} GPU(s)")
        if native and not diffrep.cuda_available():
            parser.error(f"--device {value}: diffrep's CUDA kernels cannot run here: "
                         f"{diffrep.info()['modules']['_cuda']['reason']}")
    return device


def _number(kind, low: float, strict: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            try:  # an integer written as a float: 1e5, 1.6e7
                value = float(text)
            except ValueError:
                value = None
            if kind is not int or value is None or not math.isfinite(value) or value != int(value):
                raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
                    from None
            value = int(value)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value <= low if strict else value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>' if strict else '>='} {low:g}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its "invalid ... value" message
    return parse


#: argparse ``type=`` of the bench flags: ``positive_int`` (a size, a count of rounds: >= 1; ``1e5`` reads as
#: 100000), ``nonnegative_int`` (>= 0), ``positive_float`` (a budget in seconds, a scale: > 0). A bad value exits 2
#: with a usage error naming the flag, before any work
positive_int = _number(int, 1, strict=False)
nonnegative_int = _number(int, 0, strict=False)
positive_float = _number(float, 0, strict=True)


def int_list(low: int = 1):
    """argparse ``type=`` of a comma-separated list of integers >= ``low`` (``--sizes 1024,4096``)."""
    one = _number(int, low, strict=False)

    def parse(text: str) -> list[int]:
        return [one(part.strip()) for part in text.split(",")]
    parse.__name__ = "comma-separated integer"
    return parse


def choice_list(parser, flag: str, value: str, known) -> set[str]:
    """The names of a comma-separated flag (``--skip fast,tad``), or the parser's usage error naming the
    unknown ones (a typo used to be ignored: the section it meant to skip ran for minutes)."""
    names = set(value.split(",")) - {""}
    unknown = sorted(names - set(known))
    if unknown:
        parser.error(f"{flag}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return names


def writable_out(parser, flag: str, path, *, append: bool = False, overwrite: bool = False):
    """Check an output path before any measurement: the parser's usage error when its folder is missing or
    unwritable, or (``append`` False) when the file exists and ``overwrite`` is not set, so a run does not
    replace an earlier result without a word."""
    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"{flag} {path}: is a folder")
    if not os.path.isdir(folder):
        parser.error(f"{flag} {path}: No such file or directory (no folder {folder})")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        parser.error(f"{flag} {path}: not writable")
    if os.path.exists(path) and not append and not overwrite:
        parser.error(f"{flag} {path} exists (an earlier result); choose another {flag} or add --overwrite")
    return path


def shown(value: float, met, digits: int = 1, *, thousands: bool = False) -> str:
    """``value`` to ``digits`` decimals, or more where rounding would put the printed number on the other side of
    the target (``met``: the target's test), so a reader never sees '1.0x -> missed' for 0.97x. ``thousands``: a
    ',' between the thousands (19,999.6 images/s, not '20,000 images/s -> missed')."""
    for d in range(digits, 7):
        text = f"{value:{',' if thousands else ''}.{d}f}"
        if bool(met(float(text.replace(",", "")))) == bool(met(value)):
            return text
    return repr(value)


def target_line(target: str, measured: str, met: bool | None) -> str:
    """One target verdict, the line every bench prints after its table: ``# target <what>: <measured> -> met``
    (``missed``; ``not measured`` with ``met`` None: the run did not reach the target's size)."""
    verdict = "not measured" if met is None else ("met" if met else "missed")
    return f"# target {target}: {measured} -> {verdict}"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns, device, repeat, budget=3.0):
    """Median seconds of each of ``fns`` over the rounds of :func:`interleaved_times`."""
    return [statistics.median(ts) for ts in interleaved_times(fns, device, repeat, budget)]


def interleaved_times(fns, device, repeat, budget=3.0, warm=False):
    """Seconds of each run of each of ``fns``, timed in interleaved rounds (fn0, fn1, ..., fn0, fn1,
    ...) after one warm-up each, for up to ``repeat`` rounds or until ``budget`` s are spent.

    On a shared machine the load changes from one second to the next; timing the functions
    side by side, round after round, exposes them to the same load, so their *ratio* is
    meaningful even when the absolute times drift. The median ignores the rounds another job
    preempted.

    ``warm``: each timed call follows an untimed call of the same function, so every function is
    timed with its own working set in cache. Without it the order biases the ratio where the
    working set fits in cache: a function timed right after another one that evicted its inputs
    pays the cache misses, and the next function reading the same inputs finds them warm
    (continuous_update at 1e5 elements, one core: 41 us alone, 96 us right after its eager twin).
    """
    for fn in fns:
        fn()
    sync(device)
    times = [[] for _ in fns]
    spent = 0.0
    for _ in range(max(3, repeat)):
        for fn, ts in zip(fns, times):
            if warm:  # counted in the budget, so warm mode stays within it
                t0 = time.perf_counter()
                fn()
                sync(device)
                spent += time.perf_counter() - t0
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


# Copy sizes of the stated floors (floats per buffer; a copy moves 2 buffers: read + write). CPU: in
# cache 2 x 256 KiB (within one core's L2 on the machines we bench on), out of cache 2 x 256 MiB
# (beyond any cache). GPU: in cache 2 x 8 MiB (within an A100/H100 L2), out of cache 2 x 256 MiB.
COPY_IN_CACHE_FLOATS = 1 << 16
COPY_IN_CACHE_FLOATS_GPU = 1 << 21
COPY_OUT_OF_CACHE_FLOATS = 1 << 26


def copy_floors(device, repeat=15, burst=8):
    """The copy bandwidth floors in bytes/s (read + write) and the bytes each copy moves:
    ``(in_cache_bw, out_of_cache_bw, in_cache_bytes, out_of_cache_bytes)``.

    Each of ``repeat`` rounds times one out-of-cache copy, then the in-cache copy as the mean of
    ``burst`` back-to-back runs after one untimed run (the out-of-cache copy has just evicted the
    small buffers: timed right after it, the small copy would measure a cold copy, which the
    previous version of this floor did). The floors are the medians over the rounds, so a round
    another job preempted does not move them; both sizes see the same load."""
    small_floats = COPY_IN_CACHE_FLOATS_GPU if device.type == "cuda" else COPY_IN_CACHE_FLOATS
    small = copy_fn(8 * small_floats, device)
    large = copy_fn(8 * COPY_OUT_OF_CACHE_FLOATS, device)
    small()
    large()
    sync(device)
    t_small, t_large = [], []
    for _ in range(max(3, repeat)):
        t0 = time.perf_counter()
        large()
        sync(device)
        t_large.append(time.perf_counter() - t0)
        small()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(burst):
            small()
        sync(device)
        t_small.append((time.perf_counter() - t0) / burst)
    return (8 * small_floats / statistics.median(t_small), 8 * COPY_OUT_OF_CACHE_FLOATS / statistics.median(t_large),
            8 * small_floats, 8 * COPY_OUT_OF_CACHE_FLOATS)


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


def recipe_rows(names, time_recipe, print_row, width: int) -> int:
    """Times each recipe (``time_recipe(name)``) and prints its row (``print_row(name, record)``). One recipe's
    failure is a ``FAILED`` row (name padded to ``width``; scripts/gpu_check.py reports it), not the end of the
    bench; returns the exit status, 1 when a recipe failed."""
    failed = 0
    for name in names:
        try:
            record = time_recipe(name)
        except Exception as exc:
            failed += 1
            print(f"{name:{width}s} FAILED: {type(exc).__name__}: {exc}")
            continue
        print_row(name, record)
    return 1 if failed else 0
