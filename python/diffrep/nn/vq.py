"""VQ autoencoder for latent diffusion (taming VQ-GAN layout; DyGA Table 7, the DyGA paper's Table 7).

Layout as taming's ``Encoder``/``Decoder`` (and LDM's copy): GroupNorm eps 1e-6, downsampling by
padding the right and bottom edge by one pixel then a 3x3 stride-2 conv (``downsample_padding=0``),
nearest upsampling + 3x3 conv, one single-head attention in each middle block. Differences: the
attention's output projection starts at zero (taming: default init), and q, k, v are one 1x1 conv.

Default: f = 4 (64x64x3 -> 16x16x3), first conv 32 channels, multipliers [1, 2, 4], 2 residual blocks
per level, no attention at any level, codebook 2048 x 3. The taming encoder/decoder always have an
attention layer in the middle block; ``mid_attention`` keeps it (default) or drops it.

Losses (the VQ-GAN objective, Esser et al. 2021, Eqs. 4-7, as ``VQLPIPSWithDiscriminator``):

- L_rec = |x - x^| (L1 by default) + ``perceptual_weight`` * LPIPS(x, x^) (:mod:`diffrep.nn.lpips`; its
  weights come only from the local file ``perceptual_weights`` or ``$DIFFREP_LPIPS_WEIGHTS``);
- the VQ-VAE codebook and commitment terms with a straight-through gradient, times ``codebook_weight``.
  By default with taming's ``legacy=True`` weighting (``VectorQuantizer2``'s default, which the LDM
  autoencoders and the DyGA/DisDiff first stages were trained with): ||z_e - sg[e]||^2 +
  beta ||sg[z_e] - e||^2, i.e. beta on the codebook term; ``legacy_beta=False`` gives van den Oord et
  al. 2017, Eq. 3, ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 (beta on the commitment term). Both
  have the same value, (1 + beta) mean ||z_e - e||^2; only the gradients differ;
- when ``disc_weight > 0``, from step ``disc_start`` on: the generator term lambda * L_GAN with
  L_GAN = -E D(x^) and the adaptive weight lambda = ``disc_weight`` * ||grad_L L_rec|| /
  (||grad_L L_GAN|| + 1e-4), clamped to [0, 1e4] and detached, L the decoder's last convolution (Eq. 7);
  and the hinge loss of a :class:`PatchDiscriminator` trained by a second optimiser.

``loss(batch, step)`` returns both in one forward pass: ``"loss"`` (autoencoder) and ``"disc_loss"``
(discriminator), built so that their gradients never cross: the generator term calls the
discriminator with detached parameters, and the discriminator sees detached reconstructions. One
backward of their sum therefore gives each parameter set exactly its own gradient, which is how
:class:`diffrep.train.Trainer` trains a model that declares ``discriminator_parameters()``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import non_negative_float, non_negative_int, positive_float, positive_int
from ..config import Config, ConfigError, Ge, Gt, Lt
from .images import IMAGE_RANGE, batch_images, check_images, module_dtype
from .layers import (AttentionBlock, Downsample, GroupNorm, ResBlock, Upsample, check_groups, check_levels,
                     feature_map)
from .lpips import LPIPS, cached_lpips
from .pretrained import PretrainedMixin

__all__ = ["VQAutoencoderConfig", "VQAutoencoder", "VectorQuantizer", "PatchDiscriminator", "hinge_d_loss", "adaptive_weight",
           "TRAINING_ONLY_FIELDS"]

# the fields that shape only the first stage's training (its losses and discriminator), not the autoencoder a
# frozen first stage runs: a later stage (EncDiff, DisDiff) loads a VQ run whatever they were
TRAINING_ONLY_FIELDS = ("beta", "legacy_beta", "codebook_weight", "rec_loss", "perceptual_weight", "perceptual_weights",
                        "disc_weight", "disc_start", "disc_channels", "disc_layers")


@dataclasses.dataclass
class VQAutoencoderConfig(Config):
    image_size: int = 64  # height = width of the input images
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    ch: Annotated[int, Ge(1)] = 32  # width of the first conv (DyGA Table 7: 32)
    ch_mult: tuple[int, ...] = (1, 2, 4)  # width multiplier per level; f = 2^(len - 1) (Table 7: 1, 2, 4)
    num_res_blocks: Annotated[int, Ge(1)] = 2  # residual blocks per level (Table 7: 2)
    z_channels: Annotated[int, Ge(1)] = 3  # channels of the encoder output before the 1x1 quant conv
    embed_dim: Annotated[int, Ge(1)] = 3  # dimension of each codebook vector = latent channels (Table 7: 3)
    n_embed: Annotated[int, Ge(2)] = 2048  # codebook size (Table 7: 2048)
    beta: Annotated[float, Ge(0)] = 0.25  # VQ loss weight: on the codebook term (legacy_beta, taming's default) or on the commitment term
    legacy_beta: bool = True  # taming VectorQuantizer2 legacy=True (the LDM first stages): beta on the codebook term; False: van den Oord Eq. 3
    codebook_weight: Annotated[float, Ge(0)] = 1.0  # weight of the codebook + commitment terms (van den Oord et al. 2017, Eq. 3)
    rec_loss: Literal["l1", "l2"] = "l1"  # pixel reconstruction error: L1 (taming) or L2
    mid_attention: bool = True  # keep the self-attention layer of the middle blocks (taming always has it)
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # dropout probability in the residual blocks
    num_groups: Annotated[int, Ge(1)] = 32  # GroupNorm groups
    norm_eps: Annotated[float, Gt(0)] = 1e-6  # GroupNorm epsilon (taming's Normalize: 1e-6)
    downsample_padding: Literal[0, 1] = 0  # 0: taming's Downsample (pad right and bottom by 1, 3x3 stride-2 conv); 1: symmetric padding 1
    perceptual_weight: Annotated[float, Ge(0)] = 0.0  # LPIPS term; > 0 needs a local weight file (diffrep.nn.lpips)
    perceptual_weights: Optional[str] = None  # that file; None: $DIFFREP_LPIPS_WEIGHTS
    disc_weight: Annotated[float, Ge(0)] = 0.0  # 0: no discriminator (and no second optimiser)
    disc_start: Annotated[int, Ge(0)] = 0  # first training step with the adversarial terms
    disc_channels: Annotated[int, Ge(1)] = 64  # width of the first PatchGAN discriminator layer
    disc_layers: Annotated[int, Ge(1)] = 3  # n_layers of the PatchGAN discriminator (taming: 3)

    # 2026-12-07: models saved before had ADM's symmetric downsampling, GroupNorm eps 1e-5 and beta on the commitment term
    fields_added = {"downsample_padding": 1, "norm_eps": 1e-5, "legacy_beta": False}

    def validate(self) -> None:
        check_levels(self.image_size, self.ch_mult, field="ch_mult")
        check_groups([self.ch * m for m in self.ch_mult], self.num_groups)
        if self.perceptual_weight > 0 and self.image_size < 16:
            raise ConfigError("perceptual_weight", f"LPIPS needs images of at least 16x16, image_size is {self.image_size}")
        if self.disc_weight > 0 and PatchDiscriminator.output_size(self.image_size, self.disc_layers) < 1:
            raise ConfigError("disc_layers", f"{self.disc_layers} layers leave no output patch for "
                              f"{self.image_size}x{self.image_size} images; use fewer")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with a straight-through estimator.

    Loss: ``legacy=True`` (taming's ``VectorQuantizer2`` default, which LDM uses)
    mean ||z - sg[e]||^2 + beta mean ||sg[z] - e||^2 (beta on the codebook term); ``legacy=False``
    van den Oord et al. 2017, Eq. 3: mean ||sg[z] - e||^2 + beta mean ||z - sg[e]||^2."""

    def __init__(self, n_embed: int, embed_dim: int, beta: float = 0.25, legacy: bool = True):
        super().__init__()
        if not isinstance(legacy, bool):
            raise TypeError(f"VectorQuantizer: legacy must be a bool, got {type(legacy).__name__} {legacy!r}")
        positive_int(n_embed, "VectorQuantizer: n_embed")
        positive_int(embed_dim, "VectorQuantizer: embed_dim")
        non_negative_float(beta, "VectorQuantizer: beta")
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        self.beta = beta
        self.legacy = legacy

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [B, D, H, W] -> (z_q straight-through, codebook+commitment loss, indices [B, H, W])."""
        B, D, H, W = feature_map(z, self.embed_dim, "VectorQuantizer", "z").shape
        z = z.to(self.embedding.weight.dtype)
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        idx = d.argmin(dim=1)
        zq = e[idx].reshape(B, H, W, D).permute(0, 3, 1, 2)
        codebook, commitment = F.mse_loss(zq, z.detach()), F.mse_loss(z, zq.detach())
        loss = commitment + self.beta * codebook if self.legacy else codebook + self.beta * commitment
        return z + (zq - z).detach(), loss, idx.reshape(B, H, W)


class _Coder(nn.Module):
    def __init__(self, cfg: VQAutoencoderConfig, decoder: bool):
        super().__init__()

        eps = cfg.norm_eps

        def res(a, b):
            return ResBlock(a, b, 0, dropout=cfg.dropout, num_groups=cfg.num_groups, zero_init=False, eps=eps)

        top = cfg.ch * cfg.ch_mult[-1]
        mid = [res(top, top)] + ([AttentionBlock(top, 1, cfg.num_groups, eps=eps)] if cfg.mid_attention else []) + [res(top, top)]
        layers: list[nn.Module] = []
        if not decoder:
            layers.append(nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1))
            ch = cfg.ch
            for level, m in enumerate(cfg.ch_mult):
                for _ in range(cfg.num_res_blocks):
                    layers.append(res(ch, cfg.ch * m))
                    ch = cfg.ch * m
                if level != len(cfg.ch_mult) - 1:
                    layers.append(Downsample(ch, padding=cfg.downsample_padding))
            layers += mid + [GroupNorm(cfg.num_groups, ch, eps=eps), nn.SiLU(), nn.Conv2d(ch, cfg.z_channels, 3, padding=1)]
        else:
            layers += [nn.Conv2d(cfg.z_channels, top, 3, padding=1)] + mid
            ch = top
            for level, m in list(enumerate(cfg.ch_mult))[::-1]:
                for _ in range(cfg.num_res_blocks + 1):
                    layers.append(res(ch, cfg.ch * m))
                    ch = cfg.ch * m
                if level:
                    layers.append(Upsample(ch))
            layers += [GroupNorm(cfg.num_groups, ch, eps=eps), nn.SiLU(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class VQAutoencoder(PretrainedMixin, nn.Module):
    """``encode(x)`` -> continuous latent [B, embed_dim, H/f, W/f]; ``decode(z)`` quantises then decodes."""

    config_class = VQAutoencoderConfig

    def __init__(self, config: VQAutoencoderConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.encoder = _Coder(cfg, decoder=False)
        self.decoder = _Coder(cfg, decoder=True)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.quantizer = VectorQuantizer(cfg.n_embed, cfg.embed_dim, cfg.beta, cfg.legacy_beta)
        self.discriminator = (PatchDiscriminator(cfg.in_channels, cfg.disc_channels, cfg.disc_layers)
                              if cfg.disc_weight > 0 else None)
        self._lpips: list[LPIPS] = []  # loaded on first use, kept out of the state dict and the EMA

    def _check(self, x, who: str, name: str = "x", *, scan: bool = True) -> torch.Tensor:
        """``x`` checked as images of the model's channels; ``scan``: also finite and in [-1, 1], in one
        reduction, as every model's images (the module call skips the scan: the loss calls it on its checked
        batch)."""
        c = self.config
        return check_images(x, channels=c.in_channels, multiple_of=c.downsample_factor, finite=scan, name=name,
                            who=f"VQAutoencoder.{who}", dtype=module_dtype(self),
                            value_range=IMAGE_RANGE if scan else None)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The continuous (pre-quantisation) latent [B, embed_dim, H/f, W/f] of images in [-1, 1]."""
        return self._encode(self._check(x, "encode"))

    def _encode(self, x):  # x checked: DisDiff and EncDiff call it on their own checked batch, once per step
        return self.quant_conv(self.encoder(x.to(module_dtype(self))))  # in the coder's dtype, as _check casts

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x -> encode -> quantise -> decode: images of the input's shape (x in [-1, 1])."""
        return self._forward(self._check(x, "reconstruct"))[0]

    def _check_latent(self, z, who: str) -> torch.Tensor:
        D = self.config.embed_dim
        if (not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.dim() != 4 or z.shape[1] != D
                or min(z.shape[0], z.shape[2], z.shape[3]) < 1):
            got = f"{tuple(z.shape)} {z.dtype}" if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"VQAutoencoder.{who}: z must be a float latent [B, embed_dim={D}, h, w], got {got}")
        return z

    def quantize(self, z: torch.Tensor):
        """(z_q straight-through, codebook + commitment loss, indices [B, h, w]) of a latent [B, embed_dim, h, w]."""
        return self.quantizer(self._check_latent(z, "quantize"))

    def decode(self, z: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
        """Images from a latent [B, embed_dim, h, w] (quantised first unless ``quantize=False``)."""
        z = self._check_latent(z, "decode")
        if not isinstance(quantize, bool):  # "no" was truthy
            raise TypeError(f"VQAutoencoder.decode: quantize must be a bool, got {quantize!r}")
        if quantize:
            z = self.quantizer(z)[0]
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, codebook + commitment loss) of images checked for their shape only."""
        return self._forward(self._check(x, "forward", scan=False))

    def _forward(self, x):  # x checked
        zq, qloss, _ = self.quantizer(self._encode(x))
        return self.decoder(self.post_quant_conv(zq)), qloss

    # -- training losses --------------------------------------------------------------------
    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters for the second (discriminator) optimiser; empty when ``disc_weight == 0``."""
        return [] if self.discriminator is None else list(self.discriminator.parameters())

    def last_layer(self) -> torch.Tensor:
        """The decoder's output convolution weight, where the adaptive GAN weight is measured."""
        return self.decoder.net[-1].weight

    def perceptual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS(x, y); the network is loaded from the configured local file on first use."""
        return cached_lpips(self._lpips, self.config.perceptual_weights, x, y)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """VQ-GAN losses; ``batch`` is x or (x, ...), ``step`` the 0-based training step (None: past disc_start).
        ``generator`` is accepted and unused (the loss draws no random numbers).

        Returns ``"loss"`` (autoencoder: L_rec + codebook + lambda * L_GAN) and, with a discriminator,
        ``"disc_loss"`` (hinge); the other entries are detached values for logging.
        """
        c = self.config
        if step is not None:
            non_negative_int(step, "VQAutoencoder.loss: step")
        x = self._check(batch_images(batch), "loss", "batch")
        rec, qloss = self._forward(x)
        rec_loss = (rec - x).abs().mean() if c.rec_loss == "l1" else F.mse_loss(rec, x)
        out = {"rec": rec_loss.detach(), "vq": qloss.detach()}
        if c.perceptual_weight > 0:
            p_loss = self.perceptual(x, rec).mean()
            rec_loss = rec_loss + c.perceptual_weight * p_loss
            out["lpips"] = p_loss.detach()
        loss = rec_loss + c.codebook_weight * qloss
        if self.discriminator is None:
            return {"loss": loss, **out}
        active = step is None or step >= c.disc_start
        # taming's adopt_weight: before disc_start the discriminator term is computed but weighted 0
        # (every discriminator parameter still gets a gradient, as DistributedDataParallel expects)
        disc_loss = (1.0 if active else 0.0) * hinge_d_loss(self.discriminator(x.detach()), self.discriminator(rec.detach()))
        if active:
            frozen = {n: p.detach() for n, p in self.discriminator.named_parameters()}
            g_loss = -torch.func.functional_call(self.discriminator, frozen, (rec,)).mean()
            lam = c.disc_weight * adaptive_weight(rec_loss, g_loss, self.last_layer())
            loss = loss + lam * g_loss
            out.update(g_loss=g_loss.detach(), disc_lambda=lam)
        return {"loss": loss, "disc_loss": disc_loss, **out}


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    *, max_weight: float = 1e4) -> torch.Tensor:
    """Esser et al. 2021, Eq. 7: ||grad_L rec_loss|| / (||grad_L g_loss|| + 1e-4), clamped to [0, max_weight].

    Detached. Without a graph (e.g. under ``torch.no_grad``) it is 0, as in taming's evaluation path.
    """
    for name, v in (("rec_loss", rec_loss), ("g_loss", g_loss)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.numel() != 1:
            raise TypeError(f"adaptive_weight: {name} must be a real scalar loss tensor, got "
                            f"{getattr(v, 'shape', type(v).__name__)}")
    if not isinstance(last_layer, torch.Tensor) or not last_layer.is_floating_point():
        raise TypeError(f"adaptive_weight: last_layer must be a floating-point parameter, got {type(last_layer).__name__}")
    max_weight = positive_float(max_weight, "max_weight")
    if not (torch.is_grad_enabled() and rec_loss.requires_grad and g_loss.requires_grad):
        return torch.zeros((), device=rec_loss.device)
    if not last_layer.requires_grad:
        raise ValueError("adaptive_weight: last_layer must be a parameter both losses depend on (it requires no grad)")
    g_rec, g_gan = (torch.autograd.grad(v, last_layer, retain_graph=True, allow_unused=True)[0] for v in (rec_loss, g_loss))
    if g_rec is None or g_gan is None:  # autograd's own error named neither argument
        raise ValueError("adaptive_weight: last_layer is not in the graph of rec_loss and g_loss")
    return (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0.0, max_weight).detach()


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017) as in the taming/LDM autoencoder loss (3 layers, 64 ch)."""

    def __init__(self, in_channels: int = 3, ch: int = 64, n_layers: int = 3):
        super().__init__()
        positive_int(in_channels, "PatchDiscriminator: in_channels")
        positive_int(ch, "PatchDiscriminator: ch")
        positive_int(n_layers, "PatchDiscriminator: n_layers")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ch * prev, ch * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ch * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ch * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN initialisation, as taming's weights_init
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    @staticmethod
    def output_size(size: int, n_layers: int) -> int:
        """Side of the logit map for ``size`` x ``size`` inputs (k4 convs: n_layers at stride 2, two at stride 1)."""
        for _ in range(n_layers):
            size = size // 2
        return size - 2

    def forward(self, x):
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss 0.5 (E relu(1 - D(x)) + E relu(1 + D(x^)))."""
    for name, v in (("logits_real", logits_real), ("logits_fake", logits_fake)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.numel() == 0:
            raise TypeError(f"hinge_d_loss: {name} must be a non-empty floating-point tensor, got "
                            f"{getattr(v, 'shape', type(v).__name__)}")
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
