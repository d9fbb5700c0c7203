"""Inference networks and small VAE encoders/decoders.

- :class:`HalfUNet`: the U-Net's down and middle blocks plus two MLP heads (SAMI App. A.5; docs/methods/sami.md#architectures).
- :class:`ConvEncoder` / :class:`ConvDecoder`: the Locatello et al. (2019) conv VAE networks for
  32x32 and 64x64 images (the multi-beta VAE paper's toy encoder/decoder).
- :class:`FeatureExtractor`: DyGA's Table 9 extractor with one MLP per latent unit, and EncDiff's
  variant (the DyGA paper's Table 9).

Gaussian heads return ``(mean, logvar)``; ``variance_head="softplus_sq"`` gives sigma = softplus(a)
(variance softplus(a)^2, SAMI), ``"logvar"`` reads the head as log sigma^2.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import positive_int
from ..config import Config, ConfigError, Ge
from .images import check_images, module_dtype
from .layers import AttentionBlock, Downsample, GroupNorm, ResBlock, check_groups, check_levels, make_act
from .pretrained import PretrainedMixin

__all__ = ["HalfUNetConfig", "HalfUNet", "ConvVAEConfig", "ConvEncoder", "ConvDecoder", "DLIB_CONV_KERNELS",
           "check_conv_kernels", "dlib_stride2_conv", "FeatureExtractorConfig", "FeatureExtractor", "PerUnitMLP", "gaussian_head_output"]


#: disentanglement_lib's conv_encoder kernels (Locatello et al. 2019 Table 1: e1, e2 4x4; e3, e4 2x2)
DLIB_CONV_KERNELS = (4, 4, 2, 2)
#: what diffrep's conv encoders had before 2026-12-07 (4x4 throughout): the value older files load with
CONV_KERNELS_BEFORE_2026_12_07 = (4, 4, 4, 4)


def check_conv_kernels(kernels: tuple) -> None:
    """``kernels``: one even size >= 2 per stride-2 conv of the 64 px encoder (the 32 px one uses the first three;
    docs/methods/vae.md)."""
    if not isinstance(kernels, (tuple, list)) or len(kernels) != 4 or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 or v % 2 for v in kernels):
        raise ConfigError("conv_kernels", f"must be 4 even kernel sizes >= 2 (one per 64 px conv), got {kernels!r}")


def dlib_stride2_conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    """A stride-2 conv with TensorFlow's "same" padding for an even kernel, (k - 2) / 2 per side (disentanglement_lib)."""
    positive_int(cin, "cin")
    positive_int(cout, "cout")
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 2 or kernel % 2:
        raise ValueError(f"kernel must be an even int >= 2 (the padding (k - 2) / 2 assumes it), got {kernel!r}")
    return nn.Conv2d(cin, cout, kernel, stride=2, padding=(kernel - 2) // 2)


def gaussian_head_output(mean: torch.Tensor, raw: torch.Tensor, variance_head: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) from a raw variance head: ``softplus_sq`` (SAMI: sigma = softplus(a)) or ``logvar``."""
    for name, v in (("mean", mean), ("raw", raw)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"gaussian_head_output: {name} must be a floating-point tensor, got "
                            f"{getattr(v, 'dtype', type(v).__name__)}")
    if mean.shape != raw.shape or mean.numel() == 0:
        raise ValueError(f"gaussian_head_output: mean and raw must be non-empty tensors of one shape, got "
                         f"{tuple(mean.shape)} and {tuple(raw.shape)}")
    if variance_head == "softplus_sq":
        return mean, 2.0 * torch.log(F.softplus(raw).clamp_min(1e-20))
    if variance_head == "logvar":
        return mean, raw
    raise ValueError(f"variance_head must be 'softplus_sq' or 'logvar', got {variance_head!r}")


@dataclasses.dataclass
class HalfUNetConfig(Config):
    """SAMI Table A.5: CelebA64 uses base 64, mult [1]*6, ReLU, bias-free; CelebA-HQ [2,2,2,2,1,1], SiLU.

    Unspecified by the paper (docs/methods/sami.md#architectures), chosen here: global average pooling of the middle output,
    then per head Linear-act-Linear of width ``head_hidden``.
    """

    image_size: int = 64  # height = width of the input images
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    model_channels: Annotated[int, Ge(1)] = 64  # width of the first level
    channel_mult: tuple[int, ...] = (1, 1, 1, 1, 1, 1)  # width multiplier of each resolution level
    num_res_blocks: Annotated[int, Ge(1)] = 2  # residual blocks per level
    attention_resolutions: tuple[int, ...] = ()  # resolutions (in pixels) with a self-attention block
    latent_dim: Annotated[int, Ge(1)] = 256  # dimension of the output code (mean and variance heads)
    head_hidden: Annotated[int, Ge(0)] = 0  # 0: same as the last level's width
    act: Literal["relu", "silu"] = "relu"  # activation (SAMI Table A.5: ReLU for CelebA64, SiLU for CelebA-HQ)
    bias: bool = False  # biases in convs and linear layers (SAMI Table A.5: bias-free)
    num_groups: Annotated[int, Ge(1)] = 32  # GroupNorm groups
    variance_head: Literal["softplus_sq", "logvar"] = "softplus_sq"  # sigma = softplus(a) then squared, or a log-variance head

    def validate(self) -> None:
        check_levels(self.image_size, self.channel_mult, self.attention_resolutions)
        check_groups([self.model_channels * m for m in self.channel_mult] + [self.model_channels], self.num_groups)


class HalfUNet(PretrainedMixin, nn.Module):
    """x [B, C, H, W] -> (mean, logvar) [B, latent_dim]; blind to the noise level (no t input, SAMI Sec. 3)."""

    config_class = HalfUNetConfig

    def __init__(self, config: HalfUNetConfig):
        super().__init__()
        cfg = self._init_config(config)
        mc, b = cfg.model_channels, cfg.bias
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, mc, 3, padding=1, bias=b)]
        ch, r = mc, cfg.image_size

        def res(cin, cout):
            return ResBlock(cin, cout, 0, num_groups=cfg.num_groups, bias=b, act=cfg.act, zero_init=False)

        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers.append(res(ch, mult * mc))
                ch = mult * mc
                if r in cfg.attention_resolutions:
                    layers.append(AttentionBlock(ch, 1, cfg.num_groups))
            if level != len(cfg.channel_mult) - 1:
                layers.append(Downsample(ch, True, bias=b))
                r //= 2
        layers += [res(ch, ch), res(ch, ch), GroupNorm(cfg.num_groups, ch, bias=b), make_act(cfg.act)]
        self.body = nn.Sequential(*layers)
        hid = cfg.head_hidden or ch
        self.mean_head = nn.Sequential(nn.Linear(ch, hid, bias=b), make_act(cfg.act), nn.Linear(hid, cfg.latent_dim, bias=b))
        self.var_head = nn.Sequential(nn.Linear(ch, hid, bias=b), make_act(cfg.act), nn.Linear(hid, cfg.latent_dim, bias=b))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, channels=self.config.in_channels, size=self.config.image_size, finite=False, who="HalfUNet",
                         dtype=module_dtype(self))
        h = self.body(x).mean(dim=(2, 3))
        return gaussian_head_output(self.mean_head(h), self.var_head(h), self.config.variance_head)


@dataclasses.dataclass
class ConvVAEConfig(Config):
    """Locatello et al. (2019) Table 1 conv networks (disentanglement_lib ``conv_encoder``/``deconv_decoder``):
    stride-2 convs 32, 32, 64, 64 with kernels 4, 4, 2, 2 (``conv_kernels``; dlib's ``e3``/``e4`` are 2x2,
    TF "same" padding = (k - 2) / 2 per side at stride 2), three convs at 32x32 (the first three), FC 256,
    then the Gaussian head. The decoder's transposed convs are all 4x4 (dlib ``deconv_decoder``)."""

    image_size: Literal[32, 64] = 64  # height = width of the input images (64: four convs; 32: three)
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    latent_dim: Annotated[int, Ge(1)] = 10  # dimension of z (Table 1: 10)
    hidden: Annotated[int, Ge(1)] = 256  # width of the fully connected layer (Table 1: 256)
    variance_head: Literal["softplus_sq", "logvar"] = "logvar"  # sigma = softplus(a) then squared, or a log-variance head
    extra_input_dim: Annotated[int, Ge(0)] = 0  # > 0: a conditioning vector (e.g. an embedding of beta) concatenated before the FC
    conv_kernels: tuple[int, ...] = DLIB_CONV_KERNELS  # kernel of each stride-2 encoder conv (disentanglement_lib conv_encoder: 4, 4, 2, 2; the 32 px nets use the first three)

    fields_added = {"conv_kernels": CONV_KERNELS_BEFORE_2026_12_07}

    def validate(self) -> None:
        check_conv_kernels(self.conv_kernels)

    @property
    def conv_channels(self) -> list[int]:
        return [32, 32, 64, 64][: int(math.log2(self.image_size // 4))]


class ConvEncoder(PretrainedMixin, nn.Module):
    """x [B, C, S, S] (S = 32 or 64) -> (mean, logvar) [B, latent_dim]."""

    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        cfg = self._init_config(config)
        layers, cin = [], cfg.in_channels
        for c, k in zip(cfg.conv_channels, cfg.conv_kernels):
            layers += [dlib_stride2_conv(cin, c, k), nn.ReLU()]
            cin = c
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(cin * 16 + cfg.extra_input_dim, cfg.hidden), nn.ReLU())
        self.head = nn.Linear(cfg.hidden, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        x = check_images(x, channels=cfg.in_channels, size=cfg.image_size, finite=False, who="ConvEncoder",
                         dtype=module_dtype(self))
        h = self.convs(x)
        if cfg.extra_input_dim:
            if extra is None or extra.shape != (x.shape[0], cfg.extra_input_dim):
                raise ValueError(f"ConvEncoder: extra must have shape [B, {cfg.extra_input_dim}]")
            h = torch.cat([h, extra.to(h.dtype)], dim=1)
        mean, raw = self.head(self.fc(h)).chunk(2, dim=1)
        return gaussian_head_output(mean, raw, cfg.variance_head)


class ConvDecoder(PretrainedMixin, nn.Module):
    """z [B, latent_dim] -> image logits/means [B, C, S, S] (mirror of :class:`ConvEncoder`)."""

    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        cfg = self._init_config(config)
        chans = cfg.conv_channels[::-1]
        self.fc = nn.Sequential(nn.Linear(cfg.latent_dim + cfg.extra_input_dim, cfg.hidden), nn.ReLU(),
                                nn.Linear(cfg.hidden, chans[0] * 16), nn.ReLU())
        layers = []
        outs = chans[1:] + [cfg.in_channels]
        for cin, cout in zip(chans, outs):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers[:-1])
        self._c0 = chans[0]

    def forward(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != cfg.latent_dim or z.shape[0] < 1:
            raise ValueError(f"ConvDecoder: z must have shape [B, {cfg.latent_dim}], got {tuple(getattr(z, 'shape', ()))}")
        if not z.is_floating_point():  # an int latent failed in the first Linear ("mat1 and mat2 ... dtype")
            raise TypeError(f"ConvDecoder: z must be a floating-point tensor, got {z.dtype}")
        z = z.to(module_dtype(self))
        if cfg.extra_input_dim:
            if extra is None or extra.shape != (z.shape[0], cfg.extra_input_dim):
                raise ValueError(f"ConvDecoder: extra must have shape [B, {cfg.extra_input_dim}]")
            z = torch.cat([z, extra.to(z.dtype)], dim=1)
        return self.deconvs(self.fc(z).reshape(z.shape[0], self._c0, 4, 4))


class PerUnitMLP(nn.Module):
    """N independent MLPs, unit n mapping its scalar s_n to a token c_n (DyGA Table 9), evaluated as one
    batched matmul per layer. Weights [N, d_in, d_out]; init as ``nn.Linear`` (uniform +-1/sqrt(d_in))."""

    def __init__(self, num_units: int, widths: tuple[int, ...], act: str = "relu", final_act: bool = True):
        super().__init__()
        positive_int(num_units, "PerUnitMLP: num_units")
        # widths[0] is the width of the input s_n, a scalar: any other value built a model whose first
        # forward failed inside einsum
        if (not isinstance(widths, (tuple, list)) or len(widths) < 2 or widths[0] != 1
                or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
            raise ValueError(f"PerUnitMLP: widths must be (1, ..., d_out), at least two positive ints starting "
                             f"with the scalar input's 1, got {widths!r}")
        if not isinstance(final_act, bool):
            raise TypeError(f"PerUnitMLP: final_act must be a bool, got {final_act!r}")
        self.num_units, self.final_act = num_units, final_act
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(din)
            self.weights.append(nn.Parameter(torch.empty(num_units, din, dout).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_units, dout).uniform_(-bound, bound)))
        self.act = make_act(act, field="PerUnitMLP: act")

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """s [B, N] -> tokens [B, N, widths[-1]]."""
        if not isinstance(s, torch.Tensor) or not s.is_floating_point():
            raise TypeError(f"PerUnitMLP: s must be a floating-point tensor [B, {self.num_units}], got "
                            f"{getattr(s, 'dtype', type(s).__name__)}")
        if s.dim() != 2 or s.shape[1] != self.num_units or s.shape[0] < 1:
            raise ValueError(f"PerUnitMLP: s must have shape [B, {self.num_units}], got {tuple(s.shape)}")
        h = s.to(self.weights[0].dtype).unsqueeze(-1)  # the module's precision (docs/architecture.md#inputs)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.einsum("bni,nio->bno", h, w) + b
            if i < last or self.final_act:
                h = self.act(h)
        return h


@dataclasses.dataclass
class FeatureExtractorConfig(Config):
    """``preset="dyga"``: Table 9 as corrected in the DyGA paper's Table 9 (conv 7x7 3->64, four 4x4 stride-2
    convs to 256x4x4, FC 4096->4096->256->N, per-unit MLP 1->256->512->32 with a final ReLU).
    ``preset="encdiff"``: EncDiff's ``Encoder4`` (four 4x4 stride-2 convs of 128 with BatchNorm, the third
    without ReLU, two residual blocks, Linear(2048->N), per-unit MLP 1->64->128->16 with ELU, no final
    activation). The residual block layout of ``encdiff`` (ReLU-conv3x3-ReLU-conv1x1) is our reading."""

    preset: Literal["dyga", "encdiff"] = "dyga"  # dyga: DyGA Table 9 (tokens of 32); encdiff: EncDiff's Encoder4 (tokens of 16)
    image_size: int = 64  # height = width of the input images (the published extractors: 64)
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    num_units: Annotated[int, Ge(1)] = 20  # N, the number of scalar units / tokens

    def validate(self) -> None:
        if self.image_size != 64:
            raise ConfigError("image_size", f"the published extractors read 64x64 images, got {self.image_size}")

    @property
    def token_dim(self) -> int:
        return 32 if self.preset == "dyga" else 16


class _ResBlockBN(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(), nn.Conv2d(ch, ch, 1))

    def forward(self, x):
        return x + self.net(x)


class FeatureExtractor(PretrainedMixin, nn.Module):
    """x [B, 3, 64, 64] in [-1, 1] -> (scalars [B, N], tokens [B, N, D]); tokens condition the U-Net."""

    config_class = FeatureExtractorConfig

    def __init__(self, config: FeatureExtractorConfig):
        super().__init__()
        cfg = self._init_config(config)
        if cfg.preset == "dyga":
            layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, 64, 7, 1, 3), nn.BatchNorm2d(64), nn.ReLU()]
            for cin, cout in ((64, 128), (128, 256), (256, 256), (256, 256)):
                layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
            self.cnn = nn.Sequential(*layers, nn.Flatten())
            self.fc = nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, cfg.num_units))
            self.mlp = PerUnitMLP(cfg.num_units, (1, 256, 512, 32), "relu", final_act=True)
        else:
            layers = []
            cin = cfg.in_channels
            for i in range(4):
                layers += [nn.Conv2d(cin, 128, 4, 2, 1), nn.BatchNorm2d(128)] + ([nn.ReLU()] if i != 2 else [])
                cin = 128
            self.cnn = nn.Sequential(*layers, _ResBlockBN(128), _ResBlockBN(128), nn.Flatten())
            self.fc = nn.Linear(2048, cfg.num_units)
            self.mlp = PerUnitMLP(cfg.num_units, (1, 64, 128, 16), "elu", final_act=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, channels=self.config.in_channels, size=self.config.image_size, finite=False,
                         who="FeatureExtractor", dtype=module_dtype(self))
        s = self.fc(self.cnn(x))
        return s, self.mlp(s)
