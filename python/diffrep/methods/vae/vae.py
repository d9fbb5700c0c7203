"""AE, VAE and beta-VAE with its capacity-annealed variant (docs/methods/vae.md#ae-vae-beta-vae).

- :class:`AE`: z = mu(x) (deterministic), loss = -log p(x|z);
- :class:`VAE`: loss = -log p(x|z) + KL(q(z|x) || N(0, I)) (Kingma & Welling 2014, the negative ELBO);
- :class:`BetaVAE`: loss = -log p(x|z) + beta KL (Higgins et al. 2017, Eq. 4); with ``capacity_max``
  set, the capacity-annealed objective of Burgess et al. 2018 (Eq. 8): -log p(x|z) + gamma |KL - C|,
  C = min(capacity_max, capacity_max * step / capacity_steps) (disentanglement_lib ``AnnealedVAE``;
  ``step=None``: C = capacity_max).
KL is the closed form summed over latents, averaged over the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional

from ..._checks import non_negative_float, positive_int, training_step
from ...config import ConfigError, Ge, Gt
from .core import VAEBase, VAENetConfig

__all__ = ["AEConfig", "AE", "VAEConfig", "VAE", "BetaVAEConfig", "BetaVAE", "capacity_at"]


@dataclasses.dataclass
class AEConfig(VAENetConfig):
    """A deterministic autoencoder with the shared networks (the encoder's variance head is unused)."""


class AE(VAEBase):
    """Deterministic autoencoder: z = mu(x); loss = recon. ``sample`` decodes z ~ N(0, I), which an AE
    does not model (there is no prior); it is there for the common surface."""

    config_class = AEConfig
    stochastic = False

    def _objective(self, parts, step, generator):
        return {"loss": parts["recon"], "recon": parts["recon"]}


@dataclasses.dataclass
class VAEConfig(VAENetConfig):
    """The plain VAE (beta = 1)."""


class VAE(VAEBase):
    """loss = recon + KL (the negative ELBO)."""

    config_class = VAEConfig

    def _objective(self, parts, step, generator):
        kl = self._kl(parts["mu"], parts["logvar"])
        return {"loss": parts["recon"] + kl, "recon": parts["recon"], "kl": kl}


def capacity_at(step: int | None, capacity_max: float, capacity_steps: int) -> float:
    """C(step) = min(C_max, C_max * step / capacity_steps) (Burgess et al. 2018, Sec. 5); None: C_max."""
    step = training_step(step)
    capacity_max = non_negative_float(capacity_max, "capacity_max")
    capacity_steps = positive_int(capacity_steps, "capacity_steps")
    if step is None:
        return float(capacity_max)
    return float(min(capacity_max, capacity_max * step / capacity_steps))


@dataclasses.dataclass
class BetaVAEConfig(VAENetConfig):
    """``beta``: the KL weight (disentanglement_lib grid 1, 2, 4, 6, 8, 16; default 4, Higgins et al.'s
    dSprites value). ``capacity_max`` set: the annealed objective with weight ``capacity_gamma`` (1000)
    and C rising linearly to ``capacity_max`` over ``capacity_steps`` (100,000) steps
    (disentanglement_lib ``AnnealedVAE``; c_max grid 5, 10, 25, 50, 75, 100; Burgess et al. used 25 on
    dSprites). ``beta`` is then unused."""

    beta: Annotated[float, Ge(0)] = 4.0
    capacity_max: Optional[float] = None
    capacity_gamma: Annotated[float, Gt(0)] = 1000.0
    capacity_steps: Annotated[int, Ge(1)] = 100_000

    def validate(self) -> None:
        if self.capacity_max is not None and not self.capacity_max >= 0:
            raise ConfigError("capacity_max", f"must be >= 0 (or None for the plain beta-VAE), got {self.capacity_max}")


class BetaVAE(VAEBase):
    """loss = recon + beta KL, or recon + gamma |KL - C(step)| with capacity annealing."""

    config_class = BetaVAEConfig

    def _objective(self, parts, step, generator):
        cfg = self.config
        kl = self._kl(parts["mu"], parts["logvar"])
        if cfg.capacity_max is None:
            return {"loss": parts["recon"] + cfg.beta * kl, "recon": parts["recon"], "kl": kl}
        c = capacity_at(step, cfg.capacity_max, cfg.capacity_steps)
        reg = cfg.capacity_gamma * (kl - c).abs()
        return {"loss": parts["recon"] + reg, "recon": parts["recon"], "kl": kl, "capacity": c}
