"""The CUDA launchers of the BFN, random, guidance and kNN families against their CPU launchers, on the host:
csrc/{bfn,random,guidance,knn}/*_cuda.cu built with g++ against the CUDA stand-in
(tests/ops/native/cuda_host/cuda_runtime.h: every launch concurrent, grid.x capped at 2 blocks except the kNN
scan's, shared memory poisoned per block) and the CPU kernels of the same families compiled into one program
under AddressSanitizer and UndefinedBehaviorSanitizer (tests/ops/native/cuda_vs_cpu_launchers_host.cpp, whose
header states what must agree bit for bit and each tolerance, with its derivation). The program runs twice:
with the CPU's best instruction set (DIFFREP_CPU_ISA=v4: the AVX-512 groups and exp/erf copies where this
CPU has them) and with the baseline loops (v1; v3's AVX2 copies are those loops compiled for AVX2, the
same arithmetic at -O0 without contraction). What this cannot show: device arithmetic (FMA contraction, libdevice),
races between blocks, the real launch limits."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import HOST_CXX_MISSING
from test_cuda_launchers_host import NATIVE, build_on_host, run_built

pytestmark = pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))

DRIVER = NATIVE / "cuda_vs_cpu_launchers_host.cpp"
# two programs: the CPU files of the two groups declare the same internal names
PROGRAMS = {
    "bfn": (("bfn/bfn_cuda.cu", "random/random_cuda.cu"), ("bfn/bfn_cpu.cpp", "random/random_cpu.cpp"),
            ("DIFFREP_VS_BFN",), ()),
    "rows": (("guidance/guidance_cuda.cu", "knn/knn_cuda.cu"), ("guidance/guidance_cpu.cpp", "knn/knn_cpu.cpp"),
             ("DIFFREP_VS_ROWS",), ("knn_scan_kernel",)),
}
ISA_LEVELS = ("v4", "v1")  # DIFFREP_CPU_ISA caps the dispatch (csrc/common/isa.h)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """{(program, isa): {check: mismatches}} and the worst ratios to the bounds."""
    def build(name):
        kernels, cpu, defines, whole_grid = PROGRAMS[name]
        return name, build_on_host(tmp_path_factory.mktemp(name), kernels, cpu, DRIVER, "address,undefined",
                                   defines, whole_grid)

    with ThreadPoolExecutor(2) as pool:
        exes = dict(pool.map(build, PROGRAMS))
        jobs = [(name, isa) for name in PROGRAMS for isa in ISA_LEVELS]
        outs = pool.map(lambda job: run_built(exes[job[0]], {"DIFFREP_CPU_ISA": job[1]}), jobs)
        checks, worst = {}, {}
        for job, out in zip(jobs, outs):
            lines = [line.split() for line in out.splitlines()]
            checks[job] = {n: int(v) for n, v in lines if not n.startswith("worst.")}
            worst[job] = {n: float(v) for n, v in lines if n.startswith("worst.")}
    return checks, worst


@pytest.mark.parametrize("isa", ISA_LEVELS)
def test_bfn_and_random_cuda_launchers_match_the_cpu_launchers(outputs, isa):
    """Every BFN op (both directions and spaces of the updates, K = 2, 3, 5, 16, 27, 256, per-row and
    per-item t/rho/alpha, injected and Philox noise, n over the capped grid and the CPU tiles) and
    normal_fill: flags and the Philox draws exactly, values bit for bit or within the header's bounds."""
    checks, worst = outputs
    got = checks[("bfn", isa)]
    for op in ("cts_flow", "disc_flow", "cts_update", "cts_update_inverse", "cts_sender_update", "disc_update",
               "disc_update_inverse", "disc_sender_update", "disc_probs", "disc_probs_backward", "disc_cts_loss",
               "discrete_cts_loss", "normal_fill"):
        for dtype in ("f32", "f64"):
            assert any(n.startswith(op + ".") and f".{dtype}." in n + "." for n in got), (op, dtype)
    for K in (2, 3, 5, 16, 27, 256):
        assert f"disc_update.K{K}.log.f32.n111.row.arow.clean" in got
        assert f"disc_flow.K{K}.f64.n111.row.arow.clean" in got
    assert sum(n.endswith(".flags") for n in got) > 900 and len(got) == 3500
    assert {n: v for n, v in got.items() if v != 0} == {}
    assert all(0 <= w <= 1 for w in worst[("bfn", isa)].values())


@pytest.mark.parametrize("isa", ISA_LEVELS)
def test_guidance_and_knn_cuda_launchers_match_the_cpu_launchers(outputs, isa):
    """The guidance forward, backward and double backward (every upstream mask; D = 1 to 300 across the
    block of 256 and the CPU's runs) and the kNN scan (rows over several 64-row blocks, the whole grid run;
    ties, duplicates, boundary points, NaN and inf inputs and r2): element outputs, k-th distances, counts
    and flags exactly; the row sums to the stated float64 bound."""
    checks, worst = outputs
    got = checks[("rows", isa)]
    assert sum(n.startswith("knn_scan.") for n in got) == 2 * 10 * 3
    assert sum(n.startswith("log_posterior_bwd2.g_bar.") for n in got) == 2 * 5 * 2 * 4
    assert {n: v for n, v in got.items() if v != 0} == {}
    assert all(0 <= w <= 1 for w in worst[("rows", isa)].values())
