"""What the VAE-family baselines share (docs/methods/vae.md): the networks, the decoders' likelihoods,
the Gaussian posterior and the common surface (``encode``, ``reconstruct``, ``sample``, save/load).

Networks: disentanglement_lib's ``conv_encoder`` / ``deconv_decoder`` (Locatello et al. 2019, Table 1;
encoder kernels 4, 4, 2, 2) at 64 x 64 or the 32 x 32 variant with one stride-2 layer fewer (:class:`diffrep.nn.ConvEncoder`,
:class:`diffrep.nn.ConvDecoder`). The decoder returns logits; its mean is sigmoid(logits) in [0, 1].

Likelihoods, per example summed over pixels, then averaged over the batch (disentanglement_lib
``bernoulli_loss`` / ``l2_loss``):

- ``"bernoulli"``: sum of binary cross-entropies with logits (disentanglement_lib's default
  ``bernoulli_loss``, the one its unsupervised study uses); with ``bernoulli_offset="entropy"`` minus
  the entropy of Bernoulli(x) (x clipped to [1e-6, 1 - 1e-6]), disentanglement_lib's optional
  ``subtract_true_image_entropy=True`` lower bound for non-binary targets (about 0 for binary images;
  it changes the value, never the gradient);
- ``"gaussian"``: the negative log-likelihood of N(sigmoid(logits), decoder_sigma^2), with the
  constant 0.5 log(2 pi sigma^2) per pixel. sigma^2 = 1/2 gives disentanglement_lib's ``l2_loss``
  (sum of squares) plus that constant.

Inputs: images [B, C, S, S] (or an (images, targets) pair) in [-1, 1] (``input_range="pm1"``, the
datasets' default) or [0, 1] (``"01"``); the likelihood reads them as x in [0, 1]. Outputs of
``reconstruct`` / ``sample`` / ``decode`` are the decoder means in the same range as the inputs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import positive_int
from ..._checks import shape as check_shape
from ...config import Config, Ge, Gt
from ...nn.encoders import CONV_KERNELS_BEFORE_2026_12_07, DLIB_CONV_KERNELS, ConvDecoder, ConvEncoder, ConvVAEConfig
from ...nn.gaussian import gaussian_kl
from ...nn.images import IMAGE_RANGE, UNIT_RANGE, batch_images, check_images, module_dtype
from ...nn.pretrained import PretrainedMixin

__all__ = ["VAENetConfig", "VAEBase", "reconstruction_loss", "draw_normal", "DLIB_SIGMA"]

DLIB_SIGMA = math.sqrt(0.5)  # sum of squares = NLL of N(mean, 1/2) without its constant


@dataclasses.dataclass
class VAENetConfig(Config):
    """Fields every baseline shares. Defaults: disentanglement_lib's unsupervised study (Locatello et
    al. 2019, Table 2 and App. B): 64 x 64, 10 latents, Bernoulli decoder."""

    image_size: Literal[32, 64] = 64  # height = width of the input images (the 64 px nets or the 32 px variant)
    in_channels: Annotated[int, Ge(1)] = 1  # input image channels
    latent_dim: Annotated[int, Ge(1)] = 10  # dimension of z (Locatello et al. 2019: 10)
    decoder: Literal["bernoulli", "gaussian"] = "bernoulli"  # likelihood p(x|z): Bernoulli on the logits, or Gaussian N(sigmoid(logits), decoder_sigma^2)
    bernoulli_offset: Literal["none", "entropy"] = "none"  # none: the plain cross-entropy, -log p(x|z) (disentanglement_lib's default); entropy: minus the entropy of Bernoulli(x) (its subtract_true_image_entropy option; value only, not the gradient)
    decoder_sigma: Annotated[float, Gt(0)] = DLIB_SIGMA  # "gaussian" only
    input_range: Literal["pm1", "01"] = "pm1"  # range of the input images: [-1, 1] (pm1, the datasets' default) or [0, 1]
    conv_kernels: tuple[int, ...] = DLIB_CONV_KERNELS  # encoder conv kernels (disentanglement_lib conv_encoder: 4, 4, 2, 2; models saved before 2026-12-07 had 4, 4, 4, 4 and load with it)

    fields_added = {"conv_kernels": CONV_KERNELS_BEFORE_2026_12_07}


def reconstruction_loss(logits: torch.Tensor, x01: torch.Tensor, *, decoder: str = "bernoulli",
                        bernoulli_offset: str = "none", decoder_sigma: float = DLIB_SIGMA) -> torch.Tensor:
    """-log p(x|z) per example [B] (module docstring); ``x01`` in [0, 1], ``logits`` the decoder output."""
    if logits.shape != x01.shape:
        raise ValueError(f"reconstruction_loss: logits {tuple(logits.shape)} and x {tuple(x01.shape)} differ in shape")
    dims = tuple(range(1, x01.dim()))
    if decoder == "bernoulli":
        ce = F.binary_cross_entropy_with_logits(logits, x01, reduction="none").sum(dims)
        if bernoulli_offset == "entropy":
            p = x01.clamp(1e-6, 1 - 1e-6)
            ce = ce - (-(p * p.log() + (1 - p) * torch.log1p(-p))).sum(dims)
        elif bernoulli_offset != "none":
            raise ValueError(f"bernoulli_offset must be 'entropy' or 'none', got {bernoulli_offset!r}")
        return ce
    if decoder == "gaussian":
        var = float(decoder_sigma) ** 2
        sq = (torch.sigmoid(logits) - x01).pow(2).sum(dims)
        return sq / (2 * var) + 0.5 * math.log(2 * math.pi * var) * x01[0].numel()
    raise ValueError(f"decoder must be 'bernoulli' or 'gaussian', got {decoder!r}")


def draw_normal(shape, *, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normals of ``shape`` in ``like``'s dtype and device, drawn on the generator's device."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if not isinstance(like, torch.Tensor) or not like.is_floating_point():  # normals in an int dtype do not exist
        raise TypeError(f"draw_normal: like must be a floating-point tensor, got {getattr(like, 'dtype', type(like).__name__)}")
    shape = check_shape(shape)
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


class VAEBase(PretrainedMixin, nn.Module):
    """Encoder q(z|x) = N(mu, diag exp(logvar)) + decoder p(x|z); subclasses define ``_objective``."""

    config_class = VAENetConfig
    stochastic = True  # False: z = mu (AE) or the quantised code (FSQAE)

    def __init__(self, config):
        super().__init__()
        cfg = self._init_config(config)
        net = ConvVAEConfig(image_size=cfg.image_size, in_channels=cfg.in_channels, latent_dim=self.code_dim,
                            variance_head="logvar", conv_kernels=tuple(cfg.conv_kernels))
        self.encoder = ConvEncoder(net)
        self.decoder = ConvDecoder(net)

    @property
    def code_dim(self) -> int:
        return self.config.latent_dim

    @property
    def _name(self) -> str:
        return type(self).__name__

    # -- data ---------------------------------------------------------------------------------
    def _images01(self, batch, who: str, name: str = "x") -> torch.Tensor:
        cfg = self.config
        x = check_images(batch_images(batch), channels=cfg.in_channels, size=cfg.image_size, who=f"{self._name}.{who}",
                         name=name, dtype=module_dtype(self),
                         value_range=IMAGE_RANGE if cfg.input_range == "pm1" else UNIT_RANGE)
        return (x + 1) / 2 if cfg.input_range == "pm1" else x

    def _to_range(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 * 2 - 1 if self.config.input_range == "pm1" else x01

    # -- the model -----------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) [B, latent_dim] of q(z|x)."""
        x01 = self._images01(x, "posterior")
        return self.encoder(x01)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the metrics read: the posterior mean mu(x) [B, latent_dim]."""
        return self.posterior(x)[0]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for codes ``z`` [B, code_dim] (finite, floating point)."""
        return self.decoder(self._codes(z))

    def _codes(self, z) -> torch.Tensor:
        d, who = self.code_dim, f"{self._name}.decode"
        if not isinstance(z, torch.Tensor) or not z.dtype.is_floating_point:
            raise TypeError(f"{who}: z must be a floating-point tensor [B, {d}], got "
                            f"{z.dtype if isinstance(z, torch.Tensor) else type(z).__name__}")
        if z.dim() != 2 or z.shape[0] < 1 or z.shape[1] != d:
            raise ValueError(f"{who}: z must have shape [B, {d}] with B >= 1, got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{who}: z holds NaN or infinite values")
        return z.to(module_dtype(self))

    def _decode_own_codes(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for codes the objective drew itself from its checked batch: no finiteness read (a
        host sync per step on CUDA); a non-finite code gives a non-finite loss, which the trainer refuses
        (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        return self.decoder(z.to(module_dtype(self)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder mean sigmoid(logits) for codes ``z`` [B, latent_dim], in the input range."""
        return self._to_range(torch.sigmoid(self.decode_logits(z)))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): the decoder mean at the posterior mean (no sampling)."""
        return self.decode(self.encode(x))

    def sample_codes(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the prior p(z) = N(0, I) [n, code_dim]."""
        n = positive_int(n, "n")
        like = next(self.parameters())
        return draw_normal((n, self.code_dim), like=like, generator=generator)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images: the decoder means at z ~ p(z), in the input range."""
        return self.decode(self.sample_codes(n, generator=generator))

    # -- the objective ---------------------------------------------------------------------------
    def _recon(self, logits: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return reconstruction_loss(logits, x01, decoder=cfg.decoder, bernoulli_offset=cfg.bernoulli_offset,
                                   decoder_sigma=cfg.decoder_sigma).mean()

    def _forward_parts(self, batch, generator) -> dict:
        """Encode, draw z ~ q(z|x) by reparameterisation, decode: the pieces every objective reads."""
        x01 = self._images01(batch, "loss", "batch")
        mu, logvar = self.encoder(x01)
        if self.stochastic:
            z = mu + torch.exp(0.5 * logvar) * draw_normal(mu.shape, like=mu, generator=generator)
        else:
            z = mu
        logits = self._decode_own_codes(z)
        return {"x01": x01, "mu": mu, "logvar": logvar, "z": z, "recon": self._recon(logits, x01)}

    @staticmethod
    def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) summed over latents, averaged over the batch (closed form)."""
        return gaussian_kl(mu, logvar, reduction="sum").mean()

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """The method's objective (docs/methods/vae.md): ``"loss"`` plus its named terms (detached)."""
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ValueError(f"{self._name}.loss: step must be a non-negative int or None, got {step!r}")
        if generator is not None and not isinstance(generator, torch.Generator):  # FSQAE and AE draw nothing
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        parts = self._forward_parts(batch, generator)
        out = self._objective(parts, step, generator)
        return {k: (v if k == "loss" or k == "disc_loss" else v.detach()) if isinstance(v, torch.Tensor) else v
                for k, v in out.items()}

    def _objective(self, parts: dict, step: int | None, generator) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
