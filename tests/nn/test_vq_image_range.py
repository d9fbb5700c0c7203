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


def test_the_module_call_checks_the_shape_only_and_every_path_reads_in_the_coders_dtype():
    """Written for the surviving mutants of benches/results/mutation_session_2026-12-07b.md: forward (the module
    call) does not scan the values (0..255 and NaN images go through, as its docstring says: the loss scans its
    batch before); _encode, which DisDiff and EncDiff call on their own checked batch, and reconstruct cast
    float32 images to a float64 coder."""
    m = _model()
    x = _edges() * 127.5 + 127.5
    with torch.no_grad():
        rec, qloss = m(x)
        zq, want_q, _ = m.quantizer(m.quant_conv(m.encoder(x)))
        torch.testing.assert_close(rec, m.decoder(m.post_quant_conv(zq)), rtol=0, atol=0)
        torch.testing.assert_close(qloss, want_q, rtol=0, atol=0)
        x[0, 0, 0, 0] = float("nan")
        assert m(x)[0].shape == x.shape  # not scanned: no error
    with pytest.raises(ValueError, match=r"^VQAutoencoder\.forward: x"):
        m(x[:, :2])  # the shape is still checked: 2 channels for a 3-channel coder
    m = m.double()
    x = _edges()
    with torch.no_grad():
        z = m.quant_conv(m.encoder(x.double()))
        torch.testing.assert_close(m._encode(x), z, rtol=0, atol=0)
        rec = m.reconstruct(x)
        assert rec.dtype == torch.float64
        torch.testing.assert_close(rec, m.decoder(m.post_quant_conv(m.quantizer(z)[0])), rtol=0, atol=0)


def test_sizes_off_the_down_sampling_grid_are_refused_and_the_loss_reads_in_the_coders_dtype():
    """Written for the surviving mutants of benches/results/mutation_session_2026-12-07b.md: H, W must be
    multiples of the coder's down-sampling factor (4 here: three levels), for every verb; the loss casts a
    float32 batch to a float64 coder before the discriminator reads it (the values equal those of the float64
    batch)."""
    m = _model()
    for verb in ("encode", "reconstruct"):
        with pytest.raises(ValueError, match=rf"^VQAutoencoder\.{verb}: x must have shape \[B, 3, H, W\] with H, W "
                                             r"divisible by 4, got \(1, 3, 18, 18\)$"):
            getattr(m, verb)(torch.zeros(1, 3, 18, 18))
    torch.manual_seed(0)
    m = VQAutoencoder(tiny_vq(disc_weight=0.5, disc_channels=8, disc_layers=1)).double()
    x = _edges()
    got, want = m.loss(x), m.loss(x.double())
    assert set(got) == set(want) and got["loss"].dtype == torch.float64
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
