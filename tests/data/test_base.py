"""Ground-truth interface: index math, sampling, validation, item formats."""

import numpy as np
import pytest
import torch

from diffrep.data.base import ArrayGroundTruthData, GroundTruthData
from diffrep.data.dsprites import DSprites


@pytest.fixture(scope="module")
def tiny():
    sizes = (2, 3, 4)
    imgs = np.arange(24, dtype=np.uint8).reshape(24, 1, 1, 1) * 10
    return ArrayGroundTruthData(imgs, ("a", "b", "c"), sizes, item_format="uint8")


def test_bases_match_disentanglement_lib_table():
    d = DSprites(keep_color=True, cache=False)
    assert list(d.factor_bases) == [737280, 245760, 40960, 1024, 32, 1]
    d5 = DSprites(cache=False)
    assert d5.factor_sizes == (3, 6, 40, 32, 32) and len(d5) == 737280
    # index 1 = posY + 1, index 32 = posX + 1 (docs/data.md#dsprites)
    assert d5.index_to_factors([1, 32]).tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]


def test_index_roundtrip_and_rowmajor(tiny):
    idx = np.arange(24)
    f = tiny.index_to_factors(idx)
    assert f.dtype == np.int64 and f.shape == (24, 3)
    assert np.array_equal(f, np.stack(np.unravel_index(idx, (2, 3, 4)), 1))
    assert np.array_equal(tiny.factors_to_index(f), idx)
    assert tiny.factors_to_index([1, 2, 3]).tolist() == [1 * 12 + 2 * 4 + 3]


def test_out_of_range_and_bad_types(tiny):
    with pytest.raises(ValueError, match="'c' class 4 out of range"):
        tiny.factors_to_index([[0, 0, 4]])
    with pytest.raises(ValueError, match="out of range"):
        tiny.factors_to_index([[-1, 0, 0]])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        tiny.factors_to_index([[0, 0]])
    with pytest.raises(TypeError):
        tiny.factors_to_index([[0.5, 0, 0]])
    with pytest.raises(ValueError, match="out of range"):
        tiny.index_to_factors([24])
    with pytest.raises(ValueError, match="out of range"):
        tiny.sample_observations_from_factors([[2, 0, 0]])
    with pytest.raises(IndexError):
        tiny[24]
    with pytest.raises(ValueError):
        tiny.sample_factors(-1)
    with pytest.raises(TypeError):
        tiny.sample_factors(3, rng="seed")


def test_sample_factors_rng_flavours(tiny):
    a = tiny.sample_factors(1000, np.random.default_rng(3))
    assert a.dtype == np.int64 and a.shape == (1000, 3)
    for k, s in enumerate((2, 3, 4)):
        assert set(np.unique(a[:, k])) == set(range(s))
    assert np.array_equal(a, tiny.sample_factors(1000, np.random.default_rng(3)))
    b = tiny.sample_factors(10, np.random.RandomState(0))
    assert b.shape == (10, 3) and b.max(0).tolist() <= [1, 2, 3]
    c1 = tiny.sample_factors(10, torch.Generator().manual_seed(5))
    c2 = tiny.sample_factors(10, torch.Generator().manual_seed(5))
    assert np.array_equal(c1, c2)


def test_observations_and_item_formats(tiny):
    f = np.array([[1, 2, 3], [0, 0, 1]])
    obs = tiny.sample_observations_from_factors(f)
    assert obs.dtype == np.float32 and obs.shape == (2, 1, 1, 1)
    assert np.allclose(obs.reshape(-1), np.array([23, 1]) * 10 / 255)
    x, y = tiny[23]
    assert x.dtype == torch.uint8 and x.shape == (1, 1, 1) and int(x) == 230
    assert y.tolist() == [1, 2, 3]
    tiny.item_format = "pm1"
    x, _ = tiny[23]
    assert x.dtype == torch.float32 and abs(float(x) - (230 / 255 * 2 - 1)) < 1e-6
    xb, yb = tiny[[0, 23]]
    assert xb.shape == (2, 1, 1, 1) and yb.tolist() == [[0, 0, 0], [1, 2, 3]]
    items = tiny.__getitems__([1, 2])
    assert len(items) == 2 and items[1][1].tolist() == [0, 0, 2]
    tiny.item_format = "uint8"


def test_factor_values_and_aliases():
    d = DSprites(cache=False)
    assert d.num_factors == 5 and d.factors_num_values == [3, 6, 40, 32, 32]
    assert np.allclose(d.factor_values[1], np.linspace(0.5, 1, 6))
    assert np.isclose(d.factor_values[2][1] - d.factor_values[2][0], 2 * np.pi / 39)
    v = d.factor_classes_to_values([[2, 5, 39, 31, 0]])
    assert np.allclose(v, [[3.0, 1.0, 2 * np.pi, 1.0, 0.0]])


def test_array_data_validation():
    with pytest.raises(ValueError, match="images must be"):
        ArrayGroundTruthData(np.zeros((5, 1, 1, 1), np.uint8), ("a",), (4,))
    with pytest.raises(ValueError, match="item_format"):
        ArrayGroundTruthData(np.zeros((4, 1, 1, 1), np.uint8), ("a",), (4,), item_format="chw")
    assert isinstance(ArrayGroundTruthData(np.zeros((4, 1, 1, 1)), ("a",), (4,)), GroundTruthData)
