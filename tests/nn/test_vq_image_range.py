"""VQAutoencoder.encode and .reconstruct check their images as every model does (nn.images.check_images with
IMAGE_RANGE): in [-1, 1] with RANGE_TOLERANCE (1e-3) of round-off, finite, messages led by the verb."""

import pytest
import torch

from diffrep.nn.vq import VQAutoencoder

from helpers import tiny_vq

RANGE_MSG = (r"^VQAutoencoder\.{verb}: x: images must lie in \[-1, 1\] \(docs/data\.md#conventions; 0\.001 of "
             r"round-off allowed\), got min {lo} max {hi}: divide 0\.\.255 pixels by 127\.5 and subtract 1$")


def _model():
    torch.manual_seed(0)
    return VQAutoencoder(tiny_vq()).eval()


def _edges(past=0.0, seed=0):
    """1 x 3 x 16 x 16 images holding only -1 - past and 1 + past (both present)."""
    bit = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) < 0.5
    return torch.where(bit, torch.tensor(1.0 + past), torch.tensor(-1.0 - past))


@pytest.mark.parametrize("verb", ["encode", "reconstruct"])
def test_0_255_images_are_refused_naming_the_verb_the_range_and_the_fix(verb):
    m = _model()
    with pytest.raises(ValueError, match=RANGE_MSG.format(verb=verb, lo="0", hi="255")):
        getattr(m, verb)(_edges() * 127.5 + 127.5)
    with pytest.raises(ValueError, match=RANGE_MSG.format(verb=verb, lo=r"-1\.002", hi=r"1\.002")):
        getattr(m, verb)(_edges(past=2e-3))  # past the tolerance at both ends


@pytest.mark.parametrize("verb", ["encode", "reconstruct"])
def test_nan_and_infinite_images_are_refused(verb):
    m = _model()
    for bad in (float("nan"), float("inf")):
        x = _edges()
        x[0, 1, 2, 3] = bad
        with pytest.raises(ValueError, match=rf"^VQAutoencoder\.{verb}: x holds NaN or infinite values$"):
            getattr(m, verb)(x)


def test_images_in_range_and_within_the_tolerance_give_the_coders_values():
    m = _model()
    for past in (0.0, 9e-4):  # the ends, and round-off just inside the tolerance
        x = _edges(past=past)
        with torch.no_grad():
            z = m.quant_conv(m.encoder(x))  # the coder written out: encoder, then the 1x1 quant conv
            zq = m.quantizer(z)[0]
            rec = m.decoder(m.post_quant_conv(zq))
            torch.testing.assert_close(m.encode(x), z, rtol=0, atol=0)
            torch.testing.assert_close(m.reconstruct(x), rec, rtol=0, atol=0)


def test_the_float64_coder_reads_float32_images_in_its_own_dtype():
    m = _model().double()
    x = _edges()
    with torch.no_grad():
        out = m.encode(x)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, m.quant_conv(m.encoder(x.double())), rtol=0, atol=0)
