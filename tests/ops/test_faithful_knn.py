"""Faithfulness of the kNN kernels and their user ``prdc`` (docs/kernels/knn.md) on a 1-D case
computed by hand: Kynkaanniemi et al. (2019) Eq. 1-2 (radius = k-th neighbour with the point
itself as the 0-th, membership <=) and Naeem et al. (2020) Eq. 3-4 (density, coverage), with
points exactly on ball boundaries so that <= and < differ."""

import numpy as np
import pytest
import torch

from diffrep.metrics import generation as G
from diffrep.ops import knn, use_backend

REAL = [0.0, 1.0, 3.0, 7.0]
FAKE = [2.0, 2.5, 12.0]


def col(v, dtype=torch.float64):
    return torch.tensor(v, dtype=dtype)[:, None]


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radii_and_counts_by_hand(backend, dtype):
    with use_backend(backend, strict=True):
        assert knn.knn_radii(col(REAL, dtype), k=1).tolist() == [1.0, 1.0, 4.0, 16.0]
        assert knn.knn_radii(col(REAL, dtype), k=2).tolist() == [9.0, 4.0, 9.0, 36.0]
        # np.partition(row, k)[k] of the official implementation, self included
        d2 = (np.array(REAL)[:, None] - np.array(REAL)[None]) ** 2
        assert knn.knn_radii(col(REAL, dtype), k=3).tolist() == [np.partition(r, 3)[3] for r in d2]
        r2 = torch.tensor([1.0, 1.0, 4.0, 16.0], dtype=dtype)
        # fake 2 lies on real 1's boundary (|2 - 1|^2 = 1 = r2) and inside real 3's ball
        assert knn.ball_count(col(FAKE, dtype), col(REAL, dtype), r2).tolist() == [2, 1, 0]
        assert knn.ball_count(col(FAKE, dtype), col(REAL, dtype), r2, strict=True).tolist() == [1, 1, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prdc_by_hand(dtype):
    real, fake = np.array(REAL, dtype)[:, None], np.array(FAKE, dtype)[:, None]
    got = G.prdc(real, fake, k=1, dc_k=1, device="cpu")
    # real radii^2 1, 1, 4, 16; fake radii^2 0.25, 0.25, 90.25
    assert got == pytest.approx({"precision": 2 / 3, "recall": 1 / 2, "density": 1.0, "coverage": 1 / 2}, rel=1e-12)
    got = G.prdc(real, fake, k=1, dc_k=1, strict=True, device="cpu")
    assert got == pytest.approx({"precision": 2 / 3, "recall": 1 / 2, "density": 2 / 3, "coverage": 1 / 4}, rel=1e-12)
