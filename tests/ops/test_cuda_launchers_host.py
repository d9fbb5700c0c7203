"""The CUDA launchers and kernels of the BFN, random, guidance, kNN and metric families run on the host: their
sources (csrc/*/..._cuda.cu, csrc/common/cuda_helpers.cuh) are built with g++ against a stand-in of
the CUDA runtime (tests/ops/native/cuda_host/cuda_runtime.h), each ``kernel<<<grid, block, ...>>>(args)``
rewritten as a host launch, and compared with serial loops over the same element bodies
(tests/ops/native/cuda_launchers_host.cpp). No GPU has ever run these kernels, so this is where their
indexing, grid-stride coverage (the emulated grid is capped at 2 blocks), Philox counter mapping,
optional arrays, error flags and block reductions are checked; device arithmetic is not (a GPU run
settles that: tests/ops/test_bfn_cuda.py and the ``device`` fixture's CUDA parameter). The metric family is
compared with its CPU kernels instead (tests/ops/native/metrics_cuda_launchers_host.cpp), under AddressSanitizer;
so are the HDDC and MMD families (tests/ops/test_cuda_launchers_host_hddc_mmd.py, through ``run_on_host``), and
the four families here (tests/ops/test_cuda_vs_cpu_launchers_host.py). Every ``__shared__`` array is poisoned
per block (``host_shared``), so a kernel that reads one before writing it fails from its first block."""

import re
import subprocess
from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING

ROOT = Path(__file__).resolve().parents[2]
NATIVE = Path(__file__).resolve().parent / "native"
KERNEL_SOURCES = ("bfn/bfn_cuda.cu", "random/random_cuda.cu", "guidance/guidance_cuda.cu", "knn/knn_cuda.cu")


def host_launches(text: str, concurrent: bool, whole_grid: tuple[str, ...] = ()) -> str:
    """``text`` with every ``kernel<<<grid, block, smem, stream>>>(args)`` replaced by
    ``diffrep_host::launch(grid, block, [&] { kernel(args); }, concurrent)``; the kernels named in
    ``whole_grid`` (one block of work per blockIdx.x, no grid-stride loop) get ``, false``: all of grid.x."""
    missing = [k for k in whole_grid if k not in text]
    if missing:
        raise ValueError(f"no such kernels: {missing}")
    out, i = [], 0
    while (j := text.find("<<<", i)) >= 0:
        k, depth = j, 0  # the kernel's name (template arguments included) ends at <<<
        while k > 0:
            c = text[k - 1]
            if c == ">":
                depth += 1
            elif c == "<":
                depth -= 1
            elif depth == 0 and not (c.isalnum() or c in "_:"):
                break
            k -= 1
        e = text.index(">>>", j)
        grid, block = [p.strip() for p in re.split(r",(?![^()]*\))", text[j + 3:e])][:2]
        if text[e + 3] != "(":
            raise ValueError(f"a launch without its argument list: {text[k:e + 10]!r}")
        p, depth = e + 3, 0
        while True:
            depth += {"(": 1, ")": -1}.get(text[p], 0)
            if depth == 0:
                break
            p += 1
        capped = "" if text[k:j].split("<")[0] not in whole_grid else ", false"
        out += [text[i:k], f"diffrep_host::launch(({grid}), ({block}), [&] {{ {text[k:j]}({text[e + 4:p]}); }}, "
                           f"{'true' if concurrent else 'false'}{capped})"]
        i = p + 1
    return "".join(out) + text[i:]


def host_shared(text: str) -> str:
    """``text`` with ``diffrep_host::shared_entry(a, sizeof a);`` after each ``__shared__`` declaration, one per
    array it declares: the stand-in poisons the array for each block (tests/ops/native/cuda_host/cuda_runtime.h)."""
    def entries(m: re.Match) -> str:
        names = re.findall(r"(\w+)\s*(?:\[[^\]]*\])+", m.group(1))
        return m.group(0) + "".join(f" diffrep_host::shared_entry({n}, sizeof {n});" for n in names)
    out = re.sub(r"__shared__\s+[\w:]+\s+([^;]+);", entries, text)
    if "__shared__" in text and out == text:
        raise ValueError("a __shared__ declaration the rewrite does not recognise")
    return out


def test_launch_rewrite():
    src = "  k<T><<<grid_for(n, 256), 256, 0, as_stream(l)>>>(a, f(b, c));\n"
    assert host_launches(src, False) == (
        "  diffrep_host::launch((grid_for(n, 256)), (256), [&] { k<T>(a, f(b, c)); }, false);\n")
    assert host_launches(src, True, whole_grid=("k",)) == (
        "  diffrep_host::launch((grid_for(n, 256)), (256), [&] { k<T>(a, f(b, c)); }, true, false);\n")
    with pytest.raises(ValueError, match="no such kernels"):
        host_launches(src, True, whole_grid=("q_kernel",))
    assert host_shared("  __shared__ T lo_s[kThreads], hi_s[kThreads];\n  __shared__ double c[3][kT + 1];  // x\n") == (
        "  __shared__ T lo_s[kThreads], hi_s[kThreads]; diffrep_host::shared_entry(lo_s, sizeof lo_s);"
        " diffrep_host::shared_entry(hi_s, sizeof hi_s);\n"
        "  __shared__ double c[3][kT + 1]; diffrep_host::shared_entry(c, sizeof c);  // x\n")


def build_on_host(tmp_path, kernels, cpu, driver: Path, sanitize: str, defines=(), whole_grid=()) -> Path:
    """Builds csrc/``kernels`` (a .cu file or a tuple of them, every launch concurrent: its threads share
    barriers and warp shuffles; the ``whole_grid`` kernels uncapped, see host_launches) with csrc/``cpu``
    (the CPU kernels of the same families, one file or a tuple) and ``driver`` into one program, at -O0
    with ``-fsanitize=sanitize`` (any report fails the run) and ``-D`` ``defines``; returns the program.
    -ffp-contract=off: both sides round each operation on its own, as their shared element maths assumes
    when the drivers compare bits."""
    kernels = (kernels,) if isinstance(kernels, str) else tuple(kernels)
    cpu = (cpu,) if isinstance(cpu, str) else tuple(cpu)
    src = tmp_path / "src"
    (src / "common").mkdir(parents=True)
    helpers = (ROOT / "csrc/common/cuda_helpers.cuh").read_text()
    (src / "common/cuda_helpers.cuh").write_text(host_launches(helpers, concurrent=True))
    units, texts = [], [(ROOT / "csrc" / rel).read_text() for rel in kernels]
    missing = [k for k in whole_grid if not any(k in text for text in texts)]
    if missing:
        raise ValueError(f"no such kernels: {missing}")
    for rel, text in zip(kernels, texts):
        unit = src / (Path(rel).stem + ".cpp")
        unit.write_text(host_shared(host_launches(text, concurrent=True,
                                                  whole_grid=tuple(k for k in whole_grid if k in text))))
        units.append(unit)
    unity = tmp_path / "unity.cpp"
    unity.write_text("".join(f'#include "{u}"\n' for u in (*units, *(ROOT / "csrc" / c for c in cpu), driver)))
    exe = tmp_path / driver.stem
    flags = ["g++", "-std=c++20", "-O0", "-pthread", "-ffp-contract=off", f"-fsanitize={sanitize}",
             "-fno-sanitize-recover=all", *(f"-D{d}" for d in defines),
             "-I", str(src), "-I", str(ROOT / "csrc"), "-I", str(NATIVE / "cuda_host")]
    build = subprocess.run([*flags, str(unity), "-o", str(exe)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"the kernels did not compile:\n{build.stderr[-3000:]}"
    return exe


def run_built(exe: Path, env=None) -> str:
    """Runs a program of build_on_host (``env``: more environment variables) and returns what it prints."""
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                         env={"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1", **(env or {})})
    err = run.stderr if len(run.stderr) < 4000 else f"{run.stderr[:2000]}\n...\n{run.stderr[-2000:]}"
    assert run.returncode == 0, f"the kernels failed on the host:\n{err}"  # a sanitizer's report begins at the top
    return run.stdout


def run_on_host(tmp_path, kernels, cpu, driver: Path, sanitize: str, defines=(), whole_grid=()) -> str:
    """build_on_host, then run_built: what the program prints."""
    return run_built(build_on_host(tmp_path, kernels, cpu, driver, sanitize, defines, whole_grid))


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_cuda_launchers_match_serial_loops_over_the_element_bodies(tmp_path):
    src = tmp_path / "src"
    (src / "common").mkdir(parents=True)
    # DIFFREP_LAUNCH's kernels are element-wise grid-stride loops: their threads run one after another;
    # the .cu files' own launches (block reductions with __syncthreads) run each block's threads at once
    helpers = (ROOT / "csrc/common/cuda_helpers.cuh").read_text()
    (src / "common/cuda_helpers.cuh").write_text(host_launches(helpers, concurrent=False))
    units = []
    for rel in KERNEL_SOURCES:
        unit = src / (Path(rel).stem + ".cpp")
        # the kNN scan has no grid-stride loop (one block per 64 query rows): its whole grid runs
        whole = ("knn_scan_kernel",) if rel == "knn/knn_cuda.cu" else ()
        text = host_launches((ROOT / "csrc" / rel).read_text(), concurrent=True, whole_grid=whole)
        unit.write_text(host_shared(text))
        units.append(unit)
    units.append(NATIVE / "cuda_launchers_host.cpp")
    # one translation unit that includes the four: the standard headers and the CUDA stand-in are parsed once
    # (2.2 s of CPU at -O0, against 4.9 s for four objects); the kernels' code and its host execution are the
    # same (the .cu files' names do not collide: this would not compile), and each .cu file is compiled on
    # its own by the real build (nvcc, docs/build.md)
    unity = tmp_path / "unity.cpp"
    unity.write_text("".join(f'#include "{u}"\n' for u in units))
    exe = tmp_path / "cuda_launchers_host"
    flags = ["g++", "-std=c++20", "-O0", "-pthread", "-I", str(src), "-I", str(ROOT / "csrc"),
             "-I", str(NATIVE / "cuda_host")]
    build = subprocess.run([*flags, str(unity), "-o", str(exe)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"the kernels did not compile:\n{build.stderr[-3000:]}"
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=120).stdout
    checks = dict((name, float(v)) for name, v in (line.split() for line in out.splitlines()))
    assert len(checks) > 500
    # every family, dtype and op ran
    for op in ("cts_flow", "disc_flow", "cts_update", "cts_update_inverse", "cts_sender_update", "disc_update",
               "disc_update_inverse", "disc_sender_update", "disc_probs", "disc_probs_backward", "disc_cts_loss",
               "discrete_cts_loss", "normal_fill", "log_posterior_fwd", "log_posterior_bwd", "log_posterior_bwd2",
               "knn_scan", "cts_flow.time", "disc_flow.time", "disc_cts_loss.time", "discrete_cts_loss.time"):
        for dtype in ("f32", "f64"):
            assert any(n.startswith(f"{op}.") and f".{dtype}." in f".{n}." for n in checks), (op, dtype)
    row_sums = {n: v for n, v in checks.items() if n.startswith(("log_posterior_fwd.", "log_posterior_bwd2.g_bar."))
                and not n.endswith(".flags")}
    exact = {n: v for n, v in checks.items() if n not in row_sums}
    assert {n: v for n, v in exact.items() if v != 0} == {}  # element-wise: bit for bit, flags equal
    # a row sum in float64 in another order, rounded to the output dtype: at most an ulp apart
    assert {n: v for n, v in row_sums.items() if v > (2.5e-7 if ".f32." in n else 1e-13)} == {}


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_metric_cuda_launchers_match_the_cpu_kernels_and_stay_in_bounds_on_bad_indices(tmp_path):
    """csrc/metrics/metrics_cuda.cu on the host, every launch concurrent (warp shuffles, barriers), against
    the CPU kernels compiled into the same program (tests/ops/native/metrics_cuda_launchers_host.cpp), built
    with AddressSanitizer: knn_mi_cd's launcher no longer waits on the host for a range check, so its kernels
    must stay inside their arrays on a label or argsort entry out of range (from -2^63 to 2^40) or an argsort
    that is not a permutation, flag it as the CPU kernel does, and leave every pair without a bad index
    exact. The other four metric launchers: values and flags as the CPU's, grid-stride wraps included."""
    out = run_on_host(tmp_path, "metrics/metrics_cuda.cu", "metrics/metrics_cpu.cpp",
                      NATIVE / "metrics_cuda_launchers_host.cpp", sanitize="address")
    checks = dict((name, int(v)) for name, v in (line.split() for line in out.splitlines()))
    knn = {n for n in checks if n.startswith("knn_mi_cd.")}
    assert len(knn) == 14 * 4 and len(checks) > 90
    for op in ("auroc_matrix", "hist_discretize", "mi_matrix", "factor_vae_votes"):
        assert any(n.startswith(op + ".") for n in checks), op
    assert {n: v for n, v in checks.items() if v != 0} == {}
