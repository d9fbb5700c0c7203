"""DIP-VAE I and II (Kumar et al. 2018; docs/methods/vae.md#dip-vae): loss = -log p(x|z) + KL +
:func:`~diffrep.methods.vae.dip_regulariser` (Eq. 8 / disentanglement_lib ``DIPVAE``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

from ...config import ConfigError, Ge
from .core import VAEBase, VAENetConfig
from .dip import dip_regulariser

__all__ = ["DIPVAEConfig", "DIPVAE"]


@dataclasses.dataclass
class DIPVAEConfig(VAENetConfig):
    """``kind`` "i" or "ii"; ``lambda_od`` (disentanglement_lib grid 1, 2, 5, 10, 20, 50; default 10);
    ``lambda_d`` None: 10 lambda_od (I) or lambda_od (II), the paper's and disentanglement_lib's."""

    kind: Literal["i", "ii"] = "i"
    lambda_od: Annotated[float, Ge(0)] = 10.0
    lambda_d: Optional[float] = None

    def validate(self) -> None:
        if self.lambda_d is not None and not self.lambda_d >= 0:
            raise ConfigError("lambda_d", f"must be >= 0 or None, got {self.lambda_d}")


class DIPVAE(VAEBase):
    config_class = DIPVAEConfig

    def _objective(self, parts, step, generator):
        cfg = self.config
        kl = self._kl(parts["mu"], parts["logvar"])
        dip = dip_regulariser(parts["mu"], parts["logvar"], kind=cfg.kind, lambda_od=cfg.lambda_od,
                              lambda_d=cfg.lambda_d)
        return {"loss": parts["recon"] + kl + dip, "recon": parts["recon"], "kl": kl, "dip": dip}
