"""Faithfulness of the Philox stream (docs/kernels/random.md) against Random123's published
Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11) and the documented counter layout and
Box-Muller convention, with an independent plain-Python-int implementation written here.

Known-answer vectors: Random123 ``tests/kat_vectors`` (philox4x32 10), as reproduced in
TensorFlow's ``stateful_random_ops_test.py`` and other public ports."""

import math

import pytest
import torch

from diffrep.ops import random, use_backend
from diffrep.ops.reference import philox

M32 = 0xFFFFFFFF

KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32,) * 4, (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def py_philox(ctr, key):
    """Philox4x32-10 with Python ints (Salmon et al. 2011, Sec. 4.2; Random123 philox.h)."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def py_normals(numel, seed, offset):
    """Normal e from block counter (e >> 2 as a 64-bit word in lanes 0-1, offset in lanes 2-3),
    key (seed low, seed high); u = ((r >> 9) + 0.5) 2^-23; pairs (r0, r1) and (r2, r3)."""
    out = []
    for g in range((numel + 3) // 4):
        r = py_philox((g & M32, g >> 32, offset & M32, offset >> 32), (seed & M32, seed >> 32))
        u = [((w >> 9) + 0.5) * 2.0**-23 for w in r]
        for a, b in ((u[0], u[1]), (u[2], u[3])):
            rad = math.sqrt(-2.0 * math.log(a))
            out += [rad * math.cos(2 * math.pi * b), rad * math.sin(2 * math.pi * b)]
    return torch.tensor(out[:numel], dtype=torch.float64)


@pytest.mark.parametrize("ctr,key,expect", KAT)
def test_known_answer_vectors(ctr, key, expect):
    assert py_philox(ctr, key) == expect  # the test's own implementation first
    out = philox.philox4x32_10(tuple(torch.tensor([c], dtype=torch.int64) for c in ctr), key)
    assert tuple(int(v) for v in out) == expect


@pytest.mark.parametrize("seed,offset", [(0, 0), (0x0123456789ABCDEF, 0), ((1 << 64) - 1, 7), (12345, (1 << 40) + 3)])
def test_native_and_twin_normals_follow_the_documented_layout(seed, offset):
    """Counter (e >> 2, offset), key = the 64-bit seed, lane e & 3: cos/sin of pair 0, then pair 1."""
    n = 4 * 9 + 3  # a partial last block
    expect = py_normals(n, seed, offset)
    out = torch.empty(n, dtype=torch.float64)
    random.fill_normal(out, seed, offset)  # native (CPU)
    torch.testing.assert_close(out, expect, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(philox.normals(n, seed, offset), expect, rtol=1e-13, atol=1e-13)
    out32 = torch.empty(n, dtype=torch.float32)
    random.fill_normal(out32, seed, offset)
    torch.testing.assert_close(out32.double(), expect, rtol=2e-6, atol=2e-6)


def test_uniforms_are_the_open_interval_midpoints():
    """u = ((r >> 9) + 0.5) 2^-23: r = 0 -> 2^-24, r = 2^32 - 1 -> 1 - 2^-24 (never 0 or 1)."""
    r = torch.tensor([0, 511, 512, M32], dtype=torch.int64)
    u = philox.uniforms(r)
    assert u.tolist() == [2.0**-24, 2.0**-24, 3 * 2.0**-24, 1 - 2.0**-24]


def test_public_normal_uses_the_generator_key():
    """``normal`` keys the stream by one int64 draw of the generator (randint, two's complement)."""
    g = torch.Generator().manual_seed(3)
    seed = int(torch.randint(-(2**63), 2**63 - 1, (1,), generator=g, dtype=torch.int64)) & ((1 << 64) - 1)
    expect = py_normals(10, seed, 0)
    for backend in ("cpu", "reference"):
        with use_backend(backend):
            got = random.normal((2, 5), torch.float64, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(got.flatten(), expect, rtol=1e-13, atol=1e-13)


def test_twin_edge_sizes_and_seed_wrapping():
    assert philox.normals(0, 1, 0).shape == (0,)
    one = philox.normals(1, 5, 2)
    assert one.shape == (1,) and one.item() == pytest.approx(py_normals(1, 5, 2).item(), rel=1e-14)
    # seeds and offsets are taken modulo 2^64 (philox_key returns a two's-complement draw masked)
    torch.testing.assert_close(philox.normals(6, -1, -2), py_normals(6, (1 << 64) - 1, (1 << 64) - 2),
                               rtol=1e-13, atol=1e-13)
