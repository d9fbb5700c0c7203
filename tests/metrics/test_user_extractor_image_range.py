"""The user-extractor FID refuses float images past +-2, as the Inception path does (docs/metrics.md,
"User feature extractors"): 0..255 floats reached the extractor and were scored silently. A sampler's
overshoot up to +-2 and the ends -1 and 1 are taken; the refusal names the set or the batch."""

import numpy as np
import pytest
import torch

from diffrep.metrics import generation as G
from diffrep.metrics.fid_preprocess import FLOAT_RANGE_LIMIT


def _extract(x):
    return torch.as_tensor(x).flatten(1)[:, :3].double()


def _images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(n, 1, 4, 4, generator=g) < 0.5, torch.tensor(-1.0), torch.tensor(1.0))


def test_0_255_real_or_fake_images_are_refused_naming_the_set_min_and_max():
    real = _images()
    with pytest.raises(ValueError, match=r"^real: float images must lie in \[-1, 1\] .*got min 0 max 255: divide "
                                         r"0\.\.255 pixels by 127\.5 and subtract 1$"):
        G.fid(real * 127.5 + 127.5, real, _extract)
    with pytest.raises(ValueError, match=r"^fake: float images .*got min 0 max 255"):
        G.fid(real, (real * 127.5 + 127.5).numpy(), _extract)  # numpy arrays too


def test_a_callable_fake_batch_past_the_limit_is_refused_naming_its_images():
    real = _images()

    def fake(s, k):  # the second batch (images 4..7) on the 0..255 scale
        x = _images(k, seed=s + 1)
        return x * 127.5 + 127.5 if s >= 4 else x

    with pytest.raises(ValueError, match=r"^images 4\.\.7: float images must lie in \[-1, 1\].*got min 0 max 255"):
        G.fid(real, fake, _extract, num_samples=8, batch_size=4)
    with pytest.raises(ValueError, match=r"^images 0\.\.1: .*got min -3 max -3: divide"):
        G.image_features(_extract, lambda s, k: np.full((k, 1, 2, 2), -3.0), 2)


def test_the_ends_and_an_overshoot_up_to_the_limit_are_scored():
    real = _images()
    assert G.fid(real, real, _extract) == pytest.approx(0.0, abs=1e-9)
    edge = real * FLOAT_RANGE_LIMIT  # exactly +-2: the Inception path clips these, here they pass as they are
    want = G.frechet_distance_from_features(_extract(real).numpy(), _extract(edge).numpy())
    assert G.fid(real, edge, _extract) == pytest.approx(want, rel=1e-12)
    # integer images reach the user's extractor unchanged (its own convention)
    u8 = (real * 127.5 + 127.5).to(torch.uint8)
    assert G.fid(u8, u8, _extract) == pytest.approx(0.0, abs=1e-9)
