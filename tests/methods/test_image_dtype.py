"""Images of another floating dtype (numpy's float64) are cast to the model's dtype on entry, in every
method: the same loss and codes as the model's own dtype, where five methods raised PyTorch's
"Input type (double) and bias type (float) should be the same" (docs/architecture.md#inputs)."""

import pytest
import torch

from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.encdiff import EncDiff
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.methods.multibeta import MultiBeta, MultiBetaVAE
from diffrep.methods.paramrel import ParamReL
from diffrep.methods.sami import SAMI
from diffrep.methods.vae import VAE, BetaTCVAE
from diffrep.nn.images import check_images, module_dtype
from diffrep.nn.vq import VQAutoencoder

from helpers import untrained_on_purpose


def _shape(m):
    c = m.config
    if hasattr(c, "image_channels"):  # EncDiff: its U-Net's size is the first stage's latent
        return c.image_channels, c.image_size
    for part in (getattr(c, "unet", None), getattr(c, "encoder", None), getattr(c, "vae", None), c):
        if part is not None and hasattr(part, "in_channels") and hasattr(part, "image_size"):
            return part.in_channels, part.image_size
    if hasattr(c, "bfn"):
        return c.bfn.channels, c.bfn.image_size
    return m.image_shape[0], m.image_shape[1]


CLASSES = [ParamReL, SAMI, MultiBeta, MultiBetaVAE, DiffAE, InfoDiffusion, DisDiff, EncDiff, VAE, BetaTCVAE]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_float64_images_give_the_float32_loss_and_codes(cls):
    torch.manual_seed(0)
    m = cls(cls.config_class())
    if hasattr(m, "use_untrained_frozen_parts"):  # EncDiff's first stage: this test reads the method, not a VQ run
        m.use_untrained_frozen_parts()
    C, H = _shape(m)
    x64 = torch.rand(2, C, H, H, dtype=torch.float64) * 2 - 1
    x32 = x64.float()
    losses = [m.loss(x, step=0, generator=torch.Generator().manual_seed(1))["loss"] for x in (x64, x32)]
    assert losses[0].dtype == torch.float32 and torch.equal(losses[0], losses[1])
    if cls is DisDiff:
        encode = m.encode_units
    elif cls is MultiBetaVAE:
        def encode(x):
            return m.encode(x, torch.full((2,), 0.5))
    else:
        encode = m.encode
    codes = [encode(x) for x in (x64, x32)]
    assert codes[0].dtype == torch.float32 and torch.equal(codes[0], codes[1])


def test_a_float64_model_keeps_float64_and_float32_images_are_raised_to_it():
    torch.manual_seed(0)
    m = VAE(VAE.config_class()).double()
    C, H = _shape(m)
    x32 = torch.rand(2, C, H, H) * 2 - 1
    assert module_dtype(m) == torch.float64
    assert m.encode(x32).dtype == torch.float64
    assert torch.equal(m.encode(x32), m.encode(x32.double()))


def test_vq_autoencoder_casts_too():
    m = VQAutoencoder(VQAutoencoder.config_class())
    x64 = torch.rand(1, m.config.in_channels, 16, 16, dtype=torch.float64) * 2 - 1
    assert torch.equal(m.encode(x64), m.encode(x64.float()))


def test_check_images_casts_only_floating_images():
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    assert check_images(x, dtype=torch.float32).dtype == torch.float32
    assert check_images(x).dtype == torch.float64  # no dtype: unchanged
    classes = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    assert check_images(classes, floating=False, dtype=torch.float32).dtype == torch.long
    assert module_dtype(torch.nn.ReLU()) is None
    assert module_dtype(torch.nn.Linear(2, 2).to(torch.bfloat16)) == torch.bfloat16


def _nets():
    from diffrep.methods.encdiff_nets import SmallExtractor, SmallExtractorConfig
    from diffrep.methods.sami_nets import SAMIConvNet
    from diffrep.nn.encoders import ConvEncoder, FeatureExtractor, HalfUNet

    return [(HalfUNet, HalfUNet.config_class()), (ConvEncoder, ConvEncoder.config_class()),
            (FeatureExtractor, FeatureExtractor.config_class()), (SmallExtractor, SmallExtractorConfig()),
            (SAMIConvNet, SAMIConvNet.config_class())]


@pytest.mark.parametrize("i", range(5), ids=["HalfUNet", "ConvEncoder", "FeatureExtractor", "SmallExtractor",
                                             "SAMIConvNet"])
def test_encoder_nets_cast_images_themselves(i):
    # the nets are public building blocks: called directly they cast as the methods do
    torch.manual_seed(0)
    cls, cfg = _nets()[i]
    net = cls(cfg).eval()
    x64 = torch.rand(2, cfg.in_channels, cfg.image_size, cfg.image_size, dtype=torch.float64) * 2 - 1
    a, b = net(x64), net(x64.float())
    assert a[0].dtype == torch.float32 and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_toy_ddpm_and_multibeta_phase_3_losses_cast():
    from diffrep.methods.toy_ddpm import ToyDDPM

    torch.manual_seed(0)
    phase3 = untrained_on_purpose(MultiBeta(MultiBeta.config_class(adv_disc_weight=1.0, phase=3)))
    for m in (ToyDDPM(ToyDDPM.config_class()), phase3):
        C, H = _shape(m)
        x64 = torch.rand(2, C, H, H, dtype=torch.float64) * 2 - 1
        a, b = (m.loss(x, step=0, generator=torch.Generator().manual_seed(1)) for x in (x64, x64.float()))
        assert a["loss"].dtype == torch.float32 and torch.equal(a["loss"], b["loss"])
