"""The FSQ autoencoder (Mentzer et al. 2023, Sec. 3; docs/methods/vae.md#fsq-autoencoder): the encoder's
mean head gives len(levels) values, :class:`diffrep.nn.fsq.FSQ` bounds and rounds them (straight-through
gradient), the decoder reads the codes in [-1, 1]; loss = -log p(x|z_q). No KL, no codebook loss
(FSQ has no learned codebook)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import torch

from ..._checks import positive_int
from ...config import ConfigError, Ge
from ...nn.fsq import FSQ
from .core import VAEBase, VAENetConfig

__all__ = ["FSQAEConfig", "FSQAE"]


@dataclasses.dataclass
class FSQAEConfig(VAENetConfig):
    """``levels``: L per code channel; default ten channels of 5 levels (10 like the other baselines'
    latents; 5 is the smallest level of the paper's recommended sets, Sec. 4.1). ``latent_dim`` 0 =
    len(levels) (any other value must equal it). ``shift``: :class:`~diffrep.nn.fsq.FSQ`'s."""

    latent_dim: Annotated[int, Ge(0)] = 0
    levels: tuple[int, ...] = (5,) * 10
    shift: Literal["tan", "atanh"] = "tan"

    def validate(self) -> None:
        if not self.levels or any(v < 2 for v in self.levels):
            raise ConfigError("levels", f"every level must be >= 2 and there must be at least one, got {self.levels}")
        if self.latent_dim not in (0, len(self.levels)):
            raise ConfigError("latent_dim", f"must be 0 or len(levels) = {len(self.levels)}, got {self.latent_dim}")


class FSQAE(VAEBase):
    config_class = FSQAEConfig
    stochastic = False

    def __init__(self, config):
        super().__init__(config)
        self.fsq = FSQ(list(self.config.levels), shift=self.config.shift)

    @property
    def code_dim(self) -> int:
        return len(self.config.levels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The quantised code [B, len(levels)] in [-1, 1]."""
        return self.fsq(self.posterior(x)[0])

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """The implicit-codebook index of each image's code."""
        return self.fsq.codes_to_indices(self.encode(x))

    def sample_codes(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes drawn uniformly from the implicit codebook (each channel's levels uniform)."""
        n = positive_int(n, "n")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        like = next(self.parameters())
        dev = generator.device if generator is not None else like.device
        idx = torch.randint(self.fsq.codebook_size, (n,), generator=generator, device=dev).to(like.device)
        return self.fsq.indices_to_codes(idx, like.dtype)

    def _forward_parts(self, batch, generator) -> dict:
        x01 = self._images01(batch, "loss", "batch")
        mu, logvar = self.encoder(x01)
        z = self.fsq(mu)
        return {"x01": x01, "mu": mu, "logvar": logvar, "z": z, "recon": self._recon(self._decode_own_codes(z), x01)}

    def _objective(self, parts, step, generator):
        return {"loss": parts["recon"], "recon": parts["recon"]}
