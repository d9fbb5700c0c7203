"""beta-TCVAE (Chen et al. 2018; docs/methods/vae.md#beta-tcvae).

loss = -log p(x|z) + KL(q(z|x) || N(0, I)) + (beta - 1) TC, the decomposition of Chen et al. Eq. 2 with
alpha = gamma = 1 written as the ELBO plus the extra total-correlation weight, as disentanglement_lib's
``BetaTCVAE`` (the KL in closed form, TC from the minibatch estimator of
:func:`~diffrep.methods.vae.total_correlation`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

from ...config import ConfigError, Ge
from .core import VAEBase, VAENetConfig
from .total_correlation import total_correlation

__all__ = ["BetaTCVAEConfig", "BetaTCVAE"]


@dataclasses.dataclass
class BetaTCVAEConfig(VAENetConfig):
    """``beta``: the TC weight (disentanglement_lib grid 1, 2, 4, 6, 8, 10; default 6, Chen et al.'s
    dSprites value). ``estimator``: ``"dlib"`` (default, disentanglement_lib), ``"mws"`` or ``"mss"``
    (Chen et al.), the last two with ``dataset_size`` = the number of training images."""

    beta: Annotated[float, Ge(0)] = 6.0
    estimator: Literal["dlib", "mws", "mss"] = "dlib"
    dataset_size: Optional[int] = None

    def validate(self) -> None:
        if self.estimator == "dlib" and self.dataset_size is not None:
            raise ConfigError("dataset_size", "the 'dlib' estimator takes no dataset size")
        if self.estimator != "dlib" and (self.dataset_size is None or self.dataset_size < 2):
            raise ConfigError("dataset_size", f"the {self.estimator!r} estimator needs the number of training "
                              f"images (>= 2), got {self.dataset_size}")


class BetaTCVAE(VAEBase):
    config_class = BetaTCVAEConfig

    def _objective(self, parts, step, generator):
        cfg = self.config
        kl = self._kl(parts["mu"], parts["logvar"])
        tc = total_correlation(parts["z"], parts["mu"], parts["logvar"], estimator=cfg.estimator,
                               dataset_size=cfg.dataset_size)
        loss = parts["recon"] + kl + (cfg.beta - 1.0) * tc
        return {"loss": loss, "recon": parts["recon"], "kl": kl, "tc": tc}
