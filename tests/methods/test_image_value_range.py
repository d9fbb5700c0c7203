"""Clean images outside the pixel range are refused where they enter a model (docs/architecture.md#inputs):
0..255 floats trained and encoded silently wrong before. Exactly -1 and 1, and values within
RANGE_TOLERANCE past them, are accepted; the noisy x_t of a denoiser call is not range-checked."""

import dataclasses

import pytest
import torch

from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.encdiff import EncDiff
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.methods.multibeta import MultiBeta, MultiBetaVAE
from diffrep.methods.toy_ddpm import ToyDDPM
from diffrep.methods.vae import VAE, BetaTCVAE
from diffrep.nn.images import IMAGE_RANGE, RANGE_TOLERANCE, UNIT_RANGE, check_images
from diffrep.nn.vq import VQAutoencoder

from helpers import tiny_bfn, tiny_paramrel, tiny_sami, tiny_vq, untrained_on_purpose

PM1_FIX = r"divide 0\.\.255 pixels by 127\.5 and subtract 1"


def _edges(shape, lo=-1.0, hi=1.0, past=0.0, seed=0):
    """Images holding only the two ends of the range, ``past`` beyond them (a random sign pattern)."""
    g = torch.Generator().manual_seed(seed)
    bit = torch.rand(shape, generator=g) < 0.5
    return torch.where(bit, torch.tensor(hi + past), torch.tensor(lo - past))


# -- the shared validator ------------------------------------------------------------------------


def test_check_images_refuses_values_past_the_range_with_min_max_and_fix():
    x = _edges((2, 1, 4, 4)) * 127.5 + 127.5  # 0..255 floats
    with pytest.raises(ValueError, match=r"^M\.f: x: images must lie in \[-1, 1\] .*0\.001 of round-off allowed\), "
                                         r"got min 0 max 255: " + PM1_FIX):
        check_images(x, who="M.f", value_range=IMAGE_RANGE)
    over = 1.002
    y = torch.full((1, 1, 2, 2), -1.0)
    y[0, 0, 1, 1] = over
    with pytest.raises(ValueError, match=r"^batch: images must lie in \[-1, 1\].*got min -1 max 1\.002"):
        check_images(y, name="batch", value_range=IMAGE_RANGE)
    with pytest.raises(ValueError, match=r"got min -1\.002 max -1:"):
        check_images(torch.full((1, 1, 2, 2), -1.0).index_put_((torch.tensor(0),) * 4, torch.tensor(-over)),
                     value_range=IMAGE_RANGE)
    # standardised images (mean 0, std 1) reach past +-1 too
    with pytest.raises(ValueError, match=r"got min -2\.5 max 3: " + PM1_FIX):
        check_images(torch.tensor([-2.5, 0.0, 1.0, 3.0]).reshape(1, 1, 2, 2), value_range=IMAGE_RANGE)
    # [0, 1] models: the fix divides by 255
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\].*got min 0 max 255: divide 0\.\.255 pixels by 255$"):
        check_images(x, value_range=UNIT_RANGE)
    with pytest.raises(ValueError, match=r"got min -1 max 1: divide"):
        check_images(_edges((2, 1, 4, 4)), value_range=UNIT_RANGE)


def test_check_images_accepts_the_ends_and_round_off_within_the_tolerance():
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        x = _edges((2, 3, 4, 4)).to(dtype)
        assert torch.equal(check_images(x, value_range=IMAGE_RANGE), x)
    assert RANGE_TOLERANCE == 1e-3  # the documented tolerance (docs/architecture.md#inputs)
    within = _edges((2, 3, 4, 4), past=9e-4, seed=1).double()
    assert float(within.max()) > 1 and float(within.min()) < -1
    assert torch.equal(check_images(within, value_range=IMAGE_RANGE), within)
    u = _edges((2, 3, 4, 4), lo=0.0, hi=1.0, past=9e-4)
    assert torch.equal(check_images(u, value_range=UNIT_RANGE), u)
    # p / 127.5 - 1 of every 8-bit value, as the datasets compute it in float32
    p = torch.arange(256, dtype=torch.float32).reshape(1, 1, 16, 16)
    check_images(p / 127.5 - 1, value_range=IMAGE_RANGE)
    # no value_range: any finite value, as before
    check_images(p, value_range=None)


def test_one_scan_still_names_nan_and_infinity_and_finite_false_admits_nan():
    x = _edges((1, 1, 2, 2))
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match=r"^x holds NaN or infinite values$"):
            check_images(y, value_range=IMAGE_RANGE)
    y = x.clone()
    y[0, 0, 0, 0] = float("nan")
    assert check_images(y, finite=False, value_range=IMAGE_RANGE) is y  # NaN admitted, not a range error
    # integer class maps (the discrete BFN's data) are not range-checked here
    classes = torch.full((1, 1, 2, 2), 5, dtype=torch.long)
    assert check_images(classes, floating=False, value_range=IMAGE_RANGE) is classes


@pytest.mark.parametrize("bad", [(1.0,), (1, 2), (1.0, -1.0), (0.0, float("inf")), [-1.0, 1.0]])
def test_check_images_refuses_a_bad_value_range(bad):
    with pytest.raises(ValueError, match=r"check_images: value_range must be None or \(low, high\) floats"):
        check_images(torch.zeros(1, 1, 2, 2), value_range=bad)


# -- every method's entry points -----------------------------------------------------------------


def _shape(m):
    c = m.config
    if hasattr(c, "image_channels"):  # EncDiff
        return c.image_channels, c.image_size
    if hasattr(c, "bfn"):
        return c.bfn.channels, c.bfn.image_size
    for part in (getattr(c, "unet", None), getattr(c, "encoder", None), getattr(c, "vae", None), c):
        if part is not None and hasattr(part, "in_channels") and hasattr(part, "image_size"):
            return part.in_channels, part.image_size
    return m.image_shape[0], m.image_shape[1]


def _encode(m):
    if isinstance(m, DisDiff):
        return m.encode_units
    if isinstance(m, MultiBetaVAE):
        return lambda x: m.encode(x, torch.full((x.shape[0],), 0.5))
    if isinstance(m, MultiBeta):
        return lambda x: m.encode(x, 0.5)
    return getattr(m, "encode", None)


MODELS = {
    "SAMI": lambda: tiny_sami(dtype=torch.float32),
    "DiffAE": lambda: DiffAE(DiffAE.config_class()),
    "InfoDiffusion": lambda: InfoDiffusion(InfoDiffusion.config_class()),
    "DisDiff": lambda: untrained_on_purpose(DisDiff(DisDiff.config_class())),
    "EncDiff": lambda: untrained_on_purpose(EncDiff(EncDiff.config_class())),
    "MultiBeta": lambda: MultiBeta(MultiBeta.config_class()),
    "MultiBetaVAE": lambda: MultiBetaVAE(MultiBetaVAE.config_class()),
    "VAE": lambda: VAE(VAE.config_class()),
    "BetaTCVAE": lambda: BetaTCVAE(BetaTCVAE.config_class()),
    "ToyDDPM": lambda: ToyDDPM(ToyDDPM.config_class()),
    "ParamReL": lambda: tiny_paramrel("continuous"),
    "BFN": lambda: tiny_bfn("continuous"),
    "BFN-discrete": lambda: tiny_bfn("discrete"),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_method_refuses_0_255_images_in_loss_and_encode_and_takes_the_ends(name):
    torch.manual_seed(0)
    m = MODELS[name]()
    C, H = _shape(m)
    ok = _edges((2, C, H, H), past=0.5 * RANGE_TOLERANCE)
    bad = _edges((2, C, H, H)) * 127.5 + 127.5
    g = torch.Generator().manual_seed(1)
    assert torch.isfinite(m.loss(ok, step=0, generator=g)["loss"])
    with pytest.raises(ValueError, match=r"batch: images must lie in \[-1, 1\].*got min 0 max 255: " + PM1_FIX):
        m.loss((bad, torch.zeros(2)), step=0, generator=g)
    encode = _encode(m)
    if encode is None:  # ToyDDPM: the loss only; BFN: no encoder, its other data verb
        if not hasattr(m, "reconstruction_loss"):
            return
        m.reconstruction_loss(ok)
        with pytest.raises(ValueError, match=r"x: images must lie in \[-1, 1\].*got min 0 max 255"):
            m.reconstruction_loss(bad)
        return
    encode(ok)
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\].*got min 0 max 255: " + PM1_FIX):
        encode(bad)


def test_a_vae_reading_0_1_refuses_0_255_and_takes_0_and_1():
    cfg = VAE.config_class()
    m = VAE(dataclasses.replace(cfg, input_range="01"))
    C, H = cfg.in_channels, cfg.image_size
    m.encode(_edges((2, C, H, H), lo=0.0, hi=1.0))
    with pytest.raises(ValueError, match=r"VAE\.posterior: x: images must lie in \[0, 1\].*got min -1 max 1: "
                                         r"divide 0\.\.255 pixels by 255"):
        m.encode(_edges((2, C, H, H)))


def test_the_verbs_on_clean_images_refuse_and_the_denoiser_x_t_does_not():
    torch.manual_seed(0)
    m = tiny_sami(dtype=torch.float32)
    bad = _edges((2, 1, 8, 8)) * 127.5 + 127.5
    for verb in (m.reconstruct, lambda x: m.conditional_sample(x, num_steps=2)):
        with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\].*got min 0 max 255"):
            verb(bad)
    # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps reaches past +-1: the denoiser and the posterior take it
    x_t = torch.randn(2, 1, 8, 8) * 3
    t = torch.tensor([5, 10])
    assert m.denoise(x_t, t).shape == x_t.shape
    assert m.posterior(x_t)[0].shape == (2, 3)
    d = DiffAE(DiffAE.config_class())
    C, H = _shape(d)
    big = torch.randn(2, C, H, H) * 3
    z = d.encode(_edges((2, C, H, H)))
    assert d.eps(big, torch.tensor([1, 2]), z).shape == big.shape
    for verb in (lambda x: d.reconstruct(x, num_steps=2), lambda x: d.encode_stochastic(x, num_steps=2),
                 lambda x: d.swap(x, x, [0], num_steps=2)):
        with pytest.raises(ValueError, match=r"DiffAE\.\w+: (x|source): images must lie in \[-1, 1\]"):
            verb(big)


def test_vq_autoencoder_loss_refuses_and_paramrel_discrete_float_data_too():
    torch.manual_seed(0)
    vq = VQAutoencoder(tiny_vq())
    x = _edges((1, vq.config.in_channels, 16, 16))
    assert torch.isfinite(vq.loss(x, step=0)["loss"])
    with pytest.raises(ValueError, match=r"VQAutoencoder\.loss: batch: images must lie in \[-1, 1\].*got min 0 max 255"):
        vq.loss(x * 127.5 + 127.5, step=0)
    # the discrete flow clamped floats to [-1, 1]: 0..255 data all became class 1
    p = tiny_paramrel("discrete")
    with pytest.raises(ValueError, match=r"ParamReL\.encode: x: images must lie in \[-1, 1\].*got min 0 max 255"):
        p.encode(_edges((2, 1, 8, 8)) * 127.5 + 127.5)
    p.encode(torch.randint(0, 2, (2, 1, 8, 8)))  # integer classes: the flow's own check


def test_the_trainer_on_a_0_255_dataset_stops_at_the_first_step_before_any_update(tmp_path):
    from torch.utils.data import TensorDataset

    from diffrep.train import TrainConfig, Trainer

    torch.manual_seed(0)
    m = ToyDDPM(ToyDDPM.config_class())
    C, H = _shape(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    data = TensorDataset(_edges((4, C, H, H)) * 127.5 + 127.5, torch.zeros(4))  # a user's unscaled images
    cfg = TrainConfig(steps=2, batch_size=2, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0, device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"ToyDDPM\.loss: batch: images must lie in \[-1, 1\].*got min 0 max 255: "
                                         + PM1_FIX):
        Trainer(m, data, cfg, tmp_path / "run").train()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
