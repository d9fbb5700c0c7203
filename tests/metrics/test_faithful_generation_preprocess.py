"""Faithfulness of the FID input conventions (docs/metrics.md, "Preprocessing protocols"): the uint8
quantisation of float images (stylegan2-ada's x * 127.5 + 128, truncated), the input ranges (uint8
0..255, float [-1, 1]; [0, 255] floats refused), the per-protocol normalisation endpoints and the
default protocol (clean-fid's "clean")."""

import inspect

import numpy as np
import pytest
import torch

from diffrep.metrics import fid_preprocess as P
from diffrep.metrics import generation as G


def test_quantisation_equals_stylegan2_adas_rounding_on_a_dense_grid():
    x = torch.linspace(-1.6, 1.6, 20001).reshape(1, 1, 1, -1)
    want = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).float()  # stylegan2-ada-pytorch, written here
    got = P.to_uint8_values(x)[:, :1]
    assert torch.equal(got, want)
    # hand points: -1 -> 0, 0 -> 128 (floor 128.0), 1 -> 255, the first step above -1 at 1/255 of the range
    pts = torch.tensor([-1.0, 0.0, 1.0, -1 + 0.5 / 127.5, -1 + 0.49 / 127.5]).reshape(1, 1, 1, -1)
    assert P.to_uint8_values(pts)[0, 0, 0].tolist() == [0.0, 128.0, 255.0, 1.0, 0.0]


@pytest.mark.parametrize("protocol", ["clean", "legacy_tf", "legacy_pytorch"])
def test_uint8_and_pm1_floats_are_the_same_image(protocol):
    v = torch.randint(0, 256, (2, 3, 11, 13), dtype=torch.uint8)
    as_float = v.double() / 127.5 - 1.0  # the [-1, 1] image of the same pixels
    torch.testing.assert_close(P.preprocess(as_float, protocol, size=17), P.preprocess(v, protocol, size=17),
                               rtol=0, atol=0)


def test_normalisation_endpoints_per_protocol():
    black = torch.zeros(1, 3, 299, 299, dtype=torch.uint8)
    white = torch.full((1, 3, 299, 299), 255, dtype=torch.uint8)
    for proto in ("clean", "legacy_tf"):  # (x - 128) / 128: NVIDIA's range (-1, 0.9921875)
        assert float(P.preprocess(black, proto).min()) == -1.0
        assert float(P.preprocess(white, proto).max()) == 0.9921875
    assert float(P.preprocess(black, "legacy_pytorch").min()) == -1.0  # pytorch-fid: 2 (x / 255) - 1
    assert float(P.preprocess(white, "legacy_pytorch").max()) == 1.0


def test_floats_on_the_0_255_scale_are_refused_not_clipped_to_white():
    """Regression: [0, 255] floats (clean-fid's generator convention) were clamped to 255, so every
    image scored as a white square without a word."""
    img = torch.rand(2, 3, 8, 8) * 255
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\].*\[0, 255\] scale must be passed as uint8"):
        P.preprocess(img)
    with pytest.raises(ValueError, match="must lie in"):
        P.to_uint8_values(torch.full((1, 1, 2, 2), -2.5))
    # a sampler's overshoot stays allowed and is clipped, as stylegan2-ada clips
    edge = torch.tensor([-2.0, -1.3, 1.3, 2.0]).reshape(1, 1, 1, 4)
    assert P.to_uint8_values(edge)[0, 0, 0].tolist() == [0.0, 0.0, 255.0, 255.0]


def test_clean_is_the_default_protocol_everywhere():
    for fn in (P.preprocess, G.inception_features, G.evaluate, G.reference_statistics):
        assert inspect.signature(fn).parameters["protocol"].default == "clean"
    import argparse

    from diffrep.cli import eval_generation

    p = argparse.ArgumentParser()
    eval_generation.add_arguments(p)
    a = p.parse_args([])
    # the parser leaves them unset (so that one given without --generation is refused); run() fills these in
    assert (a.protocol, a.k, a.dc_k, a.kid_subsets, a.kid_subset_size) == (None,) * 5
    d = eval_generation.DEFAULTS
    assert (d["protocol"], d["k"], d["dc_k"], d["kid_subsets"], d["kid_subset_size"]) == ("clean", 3, None, 100, 1000)
    assert np.isclose(P.FLOAT_RANGE_LIMIT, 2.0)
