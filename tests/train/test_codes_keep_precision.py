"""Codes reach the metrics in the model's precision (float32 for a float32 network), as disentanglement_lib's
representation functions hand them over: MIG bins codes in their own dtype, and float32 and float64 edges
differ for values on an edge (docs/metrics.md)."""

import numpy as np
import pytest
import torch
from torch import nn

from diffrep.data.base import ArrayGroundTruthData
from diffrep.metrics.mig import mig
from diffrep.train import TrainConfig
from diffrep.train.evaluation import metric_preset

SIZES = (5, 4)
# a float32 code per factor cell, on a 0.05 grid (RandomState(2)): here the two dtypes' bin edges give
# MIG 0.0373 (float32) and 0.0801 (float64)
TABLE = (np.round(np.random.RandomState(2).randn(5, 4, 2) * 20) / 20).astype(np.float32)


def _dataset():
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij"), -1).reshape(-1, 2)
    images = np.zeros((len(grid), 4, 4, 1), np.float32)
    images[:, 0, 0, 0] = grid[:, 0] / 4
    images[:, 0, 1, 0] = grid[:, 1] / 3
    return ArrayGroundTruthData(images, ["a", "b"], SIZES)


class TableEncoder(nn.Module):
    """Reads the factor cell from the two informative pixels and returns its float32 table code."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))
        self.table = torch.from_numpy(TABLE)

    def encode(self, x):
        a = ((x[:, 0, 0, 0] + 1) / 2 * 4).round().long()
        b = ((x[:, 0, 0, 1] + 1) / 2 * 3).round().long()
        return self.table[a, b]


def test_the_fast_preset_scores_the_float32_codes():
    ds = _dataset()
    cfg = TrainConfig(steps=1, eval_num_samples=600, seed=7)
    got = metric_preset("fast", ds, cfg)(TableEncoder())["mig"]
    f = ds.sample_factors(600, np.random.RandomState(7))
    c32 = TABLE[f[:, 0], f[:, 1]]
    want32, want64 = mig(c32, f, mode="robust")["mig"], mig(c32.astype(np.float64), f, mode="robust")["mig"]
    assert abs(want32 - want64) > 0.01  # the case tells the two apart
    assert got == pytest.approx(want32, abs=1e-12)
