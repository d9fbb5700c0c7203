"""Pieces shared by the diffusion autoencoders (DiffAE, InfoDiffusion, DisDiff, EncDiff): the check of an
encoder + latent-conditioned U-Net pair in their configs, the checks of the codes and noise their verbs take,
the latent swap of their ``swap`` verbs, and the verbs of the two whose decoder reads one code vector
(:class:`CodeConditionedAutoencoder`)."""

from __future__ import annotations

import torch

from .._checks import flag, indices
from ..config import ConfigError
from ..diffusion import DDIMSampler
from ..nn.images import IMAGE_RANGE, check_images, module_dtype

__all__ = ["check_encoder_decoder", "check_code", "check_noise", "CodeConditionedAutoencoder"]


def check_encoder_decoder(encoder, unet, latent_dim: int, latent_cond: str, maker: str) -> None:
    """ConfigError unless ``unet`` is an epsilon-predicting decoder conditioned on a ``latent_dim`` code
    by ``latent_cond`` after the time scale-shift, reading the images ``encoder`` reads."""
    u = unet
    if u.latent_dim != latent_dim or u.latent_cond != latent_cond or u.context_dim or not u.use_scale_shift_norm:
        raise ConfigError("unet.latent_dim", f"the decoder needs unet.latent_dim={latent_dim}, latent_cond='{latent_cond}', "
                          f"use_scale_shift_norm=True, context_dim=0 (use {maker}())")
    if u.in_channels != u.out_channels or u.num_outputs != 1:
        raise ConfigError("unet.out_channels", "epsilon prediction needs out_channels == in_channels and one output")
    if (encoder.image_size, encoder.in_channels) != (u.image_size, u.in_channels):
        raise ConfigError("encoder.image_size", "the encoder and the U-Net must read the same image size and channels")


def check_code(z: torch.Tensor, name: str) -> torch.Tensor:
    """``z``, a code tensor whose shape the caller has checked, when it is floating point, holds at least one
    code and is finite (a NaN code decodes to NaN images)."""
    if not z.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.shape[0] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(z.shape)})")
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return z


def _check_latent(z, latent_dim: int, name: str, batch: int | None = None) -> torch.Tensor:
    """``z``, a [B, latent_dim] code (B = ``batch`` when given) that :func:`check_code` accepts: the code
    DiffAE and InfoDiffusion condition their decoder on."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != latent_dim or (batch is not None and z.shape[0] != batch):
        raise ValueError(f"{name} must be a [{batch or 'B'}, {latent_dim}] tensor, got {getattr(z, 'shape', type(z))}")
    return check_code(z, name)


def check_noise(x_T, shape: tuple, dtype: torch.dtype, who: str, name: str = "x_T") -> torch.Tensor:
    """The starting noise ``x_T`` of a DDIM chain: a finite floating tensor of ``shape``, cast to ``dtype``."""
    x_T = check_images(x_T, name=name, who=who, dtype=dtype)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"{who}: {name} must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
    return x_T


def _swap_dims(z: torch.Tensor, z_source: torch.Tensor, dims) -> torch.Tensor:
    """``z`` [B, d] with the dimensions ``dims`` taken from ``z_source`` [B, d] (a latent swap)."""
    if z_source.shape != z.shape:
        raise ValueError("x and source must have the same batch size")
    idx = torch.as_tensor(indices(dims, z.shape[1], "dims"), dtype=torch.long, device=z.device)
    out = z.clone()
    out[:, idx] = z_source[:, idx]
    return out


class CodeConditionedAutoencoder:
    """The verbs DiffAE and InfoDiffusion share: an encoder ``self.encoder`` (through the subclass's ``encode``)
    and a U-Net eps_theta(x_t, t, z) (``self.unet``, ``self.schedule``) conditioned on a code z
    [B, config.latent_dim], decoded and inverted by DDIM (``config.sample_steps`` steps by default). A subclass
    sets ``_who`` (its name, which starts its messages) and ``_code_name`` (its paper's name of z); its public
    verbs keep their paper's argument names and docstrings and call these."""

    _who: str
    _code_name: str

    def _images(self, x, who, name="x", *, noisy: bool = False):
        """``x`` checked as images of the model's shape: clean ones in [-1, 1] unless ``noisy`` (x_t)."""
        c = self.config.unet
        return check_images(x, channels=c.in_channels, size=c.image_size, who=f"{self._who}.{who}", name=name,
                            dtype=module_dtype(self), value_range=None if noisy else IMAGE_RANGE)

    def _check_z(self, z, batch: int | None = None, name: str | None = None):
        # in the model's dtype, as the images: a bf16 code given to a float32 model ran the whole DDIM chain
        # in bf16 (its dtype) and decoded to NaN
        z = _check_latent(z, self.config.latent_dim, self._code_name if name is None else name, batch)
        return z.to(module_dtype(self))

    def _eps(self, x_t, t, z):  # the unchecked prediction of the sampling loops and the loss
        return self.unet(x_t, t, z)

    def _checked_eps(self, x_t, t, z):
        x_t = self._images(x_t, "eps", "x_t", noisy=True)
        self.schedule._check_t(t, batch=x_t.shape[0], who=f"{self._who}.eps")
        return self._eps(x_t, t, self._check_z(z, x_t.shape[0]))

    def _sampler(self, clip: bool | None = None) -> DDIMSampler:
        return DDIMSampler(self.schedule)

    def _steps(self, num_steps: int | None) -> int | None:
        return self.config.sample_steps if num_steps is None else num_steps

    def _decode(self, z, x_T, num_steps, generator):
        c = self.config.unet
        z = self._check_z(z)
        shape = (z.shape[0], c.in_channels, c.image_size, c.image_size)
        if x_T is not None:
            x_T = check_noise(x_T, shape, z.dtype, f"{self._who}.decode")
        return self._sampler().sample(lambda xt, t: self._eps(xt, t, z), shape, num_steps=self._steps(num_steps),
                                      generator=generator, device=z.device, dtype=z.dtype, x_T=x_T)

    def _invert(self, x, z, num_steps):
        """x_T by deterministic DDIM inversion conditioned on z (None: the code of x)."""
        x = self._images(x, "encode_stochastic")
        z = self.encode(x) if z is None else self._check_z(z, x.shape[0])
        return self._sampler(clip=False).invert(lambda xt, t: self._eps(xt, t, z), x, num_steps=self._steps(num_steps))

    def _reconstruct(self, x, num_steps, stochastic, generator):
        # a string ("no", "False") read as True: the inverted x_T where fresh noise was asked for
        stochastic = flag(stochastic, "stochastic")
        z = self.encode(x)
        xT = self.encode_stochastic(x, z, num_steps=num_steps) if stochastic else None
        return self.decode(z, xT, num_steps=num_steps, generator=generator).clamp(-1, 1)

    def _swap(self, x, source, dims, num_steps):
        x, source = self._images(x, "swap"), self._images(source, "swap", "source")
        z = self.encode(x)
        z2 = _swap_dims(z, self.encode(source), dims)
        xT = self.encode_stochastic(x, z, num_steps=num_steps)
        return self.decode(z2, xT, num_steps=num_steps).clamp(-1, 1)
