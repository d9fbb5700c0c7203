"""The CUDA launchers of the HDDC and MMD families run on the host (the emulation of
tests/ops/test_cuda_launchers_host.py: csrc/hddc/hddc_cuda.cu and csrc/mmd/mmd_cuda.cu built with g++
against tests/ops/native/cuda_host/cuda_runtime.h, every launch concurrent, grid.x capped at 2 blocks) and
are compared with their CPU kernels compiled into the same program, under AddressSanitizer and
UndefinedBehaviorSanitizer. The drivers (tests/ops/native/hddc_cuda_launchers_host.cpp,
mmd_cuda_launchers_host.cpp) print one mismatch count per check; their headers state each tolerance and
why (a sum taken in another order than the CPU's: twice the worst case of recursive summation; an
element computed by the same maths: bit for bit). What this cannot show: device arithmetic (FMA
contraction, libdevice's exp), races between blocks, the real launch limits."""

import pytest

from helpers import HOST_CXX_MISSING
from test_cuda_launchers_host import NATIVE, run_on_host

pytestmark = pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))

# the HDDC kernels whose blockIdx.x is a block of work (a problem's row sum, kBlock points of a pass), not a
# grid-stride loop: the emulation runs their whole grid.x
WHOLE_GRID = ("sum_rows_kernel", "moments_kernel", "scatter_kernel", "distance_kernel")


def _checks(out: str) -> dict[str, int]:
    return dict((name, int(v)) for name, v in (line.split() for line in out.splitlines()))


def test_hddc_cuda_launchers_match_the_cpu_kernels(tmp_path):
    """E-step (resp, llp bit for bit; cnt, flags exactly; L to summation order) and both passes (mass, mean,
    W bit for bit on dyadic inputs, to summation order on generic ones; the density to summation order) at
    d on each side of the padded widths 8/16/32/64, K up to 64, n over kBlock and the capped grid, NaN and
    inf x read or skipped, and B = 5 problems launched in slices of 2 (kMaxGridYZ lowered for the build; the
    passes' grid.z limit with it, so a slice over it fails the launch; the E-step's slices, in grid.y beside
    the passes' K, are counted); every CUDA launch run twice, byte for byte."""
    out = run_on_host(tmp_path, "hddc/hddc_cuda.cu", "hddc/hddc_cpu.cpp", NATIVE / "hddc_cuda_launchers_host.cpp",
                      sanitize="address,undefined",
                      defines=("DIFFREP_HDDC_MAX_GRID_YZ=2", "DIFFREP_HOST_MAX_GRID_Z=2"), whole_grid=WHOLE_GRID)
    checks = _checks(out)
    # 14 E-step cases x 2 dtypes x 8 checks; 14 pass cases (one in float64 only) x 2 modes x 2 dtypes x 7 checks
    assert sum(n.startswith("estep.") for n in checks) == 14 * 2 * 8
    assert sum(n.startswith(("mstep.", "density.")) for n in checks) == (14 * 2 - 1) * 2 * 7
    assert {n: v for n, v in checks.items() if v != 0} == {}


def test_mmd_cuda_launcher_matches_the_cpu_kernel(tmp_path):
    """Per-row sums, gradients and the loss within the stated bounds, flags exactly, the biased MMD of
    identical sets exactly 0 on both, every CUDA launch run twice byte for byte: d on each side of the padded
    widths 16/32/64, n + m over the capped grid, RBF and IMQ with several scales, both estimators."""
    out = run_on_host(tmp_path, "mmd/mmd_cuda.cu", "mmd/mmd_cpu.cpp", NATIVE / "mmd_cuda_launchers_host.cpp",
                      sanitize="address,undefined")
    checks = _checks(out)
    for tn in ("f32", "f64"):
        assert checks[f"mmd2.{tn}.identical.zero"] == 0
        assert f"mmd2.{tn}.d64.grad" in checks and f"mmd2.{tn}.inf_y.flags_cuda" in checks
    assert len(checks) == 2 * (12 * 3 + 10 * 2 + 8 + 1)
    assert {n: v for n, v in checks.items() if v != 0} == {}
