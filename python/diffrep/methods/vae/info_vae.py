"""InfoVAE / MMD-VAE (Zhao, Song & Ermon 2019; docs/methods/vae.md#infovae).

loss = -log p(x|z) + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) MMD^2(q(z), p(z)) (Eq. 6 with
the MMD divergence, Sec. 4.2), MMD^2 from the fused :func:`diffrep.ops.mmd2` between the batch's
posterior samples z and as many draws from p(z) = N(0, I). Kernel exp(-||a - b||^2 / d^2) (InfoVAE's
``compute_kernel``), biased V-statistic, by default.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ...config import ConfigError, Gt, Le
from ...ops.mmd import mmd2
from .core import VAEBase, VAENetConfig, draw_normal

__all__ = ["InfoVAEConfig", "InfoVAE"]


@dataclasses.dataclass
class InfoVAEConfig(VAENetConfig):
    """``alpha`` = 1 (MMD-VAE: no KL term) and ``lambda_`` = 1000 by default; ``kernel`` / ``estimator`` of
    :func:`diffrep.ops.mmd2` (bandwidth d^2 for "rbf", 2d for "imq")."""

    alpha: Annotated[float, Le(1)] = 1.0
    lambda_: Annotated[float, Gt(0)] = 1000.0
    kernel: Literal["rbf", "imq"] = "rbf"
    estimator: Literal["biased", "unbiased"] = "biased"

    def validate(self) -> None:
        if self.alpha + self.lambda_ - 1 < 0:
            raise ConfigError("lambda_", f"alpha + lambda - 1 (the MMD weight) must be >= 0, got "
                              f"{self.alpha + self.lambda_ - 1}")


class InfoVAE(VAEBase):
    config_class = InfoVAEConfig

    def _objective(self, parts, step, generator):
        cfg = self.config
        z = parts["z"]
        kl = self._kl(parts["mu"], parts["logvar"])
        prior = draw_normal(z.shape, like=z, generator=generator)
        mmd = mmd2(z, prior, cfg.kernel, estimator=cfg.estimator)
        loss = parts["recon"] + (1.0 - cfg.alpha) * kl + (cfg.alpha + cfg.lambda_ - 1.0) * mmd
        return {"loss": loss, "recon": parts["recon"], "kl": kl, "mmd": mmd}
