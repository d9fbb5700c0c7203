"""FactorVAE (Kim & Mnih 2018; docs/methods/vae.md#factorvae).

loss = -log p(x|z) + KL + gamma TC_D, with the density-ratio estimate of the total correlation
TC_D = mean_i [logit_0(z_i) - logit_1(z_i)] = mean_i log D(z_i) / (1 - D(z_i)) (Eq. 3 and Sec. 3), where D
is a two-way softmax classifier telling samples of q(z) (class 0) from samples of prod_k q(z_k) (class 1).
Samples of prod_k q(z_k) are the batch's z with every latent column permuted independently across the
batch (Alg. 1, :func:`permute_dims`); like disentanglement_lib they come from the same batch as the
"real" z (Alg. 2 draws a second batch).

The discriminator (disentanglement_lib ``fc_discriminator``): 6 linear layers of 1000 units with leaky
ReLU (slope 0.2) and a 2-logit output, trained on
disc_loss = 0.5 (CE(D(z), 0) + CE(D(perm(z)), 1)) (Alg. 2), z detached, by its own Adam (lr 1e-4,
betas (0.5, 0.9)) through the trainer's two-optimiser path (``discriminator_parameters``,
``discriminator_optimizer_settings``). The TC term reads D with detached parameters, so one backward of
loss + disc_loss gives each network only its own gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..._checks import positive_int
from ...config import Ge, Gt, Lt
from .core import VAEBase, VAENetConfig

__all__ = ["FactorVAEConfig", "FactorVAE", "FactorDiscriminator", "permute_dims", "factor_tc_estimate",
           "discriminator_loss", "discriminator_accuracy"]


def _logits(t, name: str, who: str) -> None:
    """A discriminator's logits: a floating tensor [batch >= 1, 2] (class 0: a real z, class 1: a permuted one)."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor [batch, 2], got "
                        f"{getattr(t, 'dtype', type(t).__name__)}")
    if t.dim() != 2 or t.shape[1] != 2 or t.shape[0] == 0:  # an empty batch made a NaN mean
        raise ValueError(f"{who}: {name} must be [batch, 2], got {tuple(t.shape)}"
                         + (" (an empty batch)" if t.dim() == 2 and t.shape[0] == 0 else ""))


def permute_dims(z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """z [B, d] with each column permuted by its own random permutation of the batch (Kim & Mnih Alg. 1)."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"permute_dims: z must be a [batch, latent_dim] tensor, got {tuple(getattr(z, 'shape', ()))}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    b, d = z.shape
    dev = generator.device if generator is not None else z.device
    perms = torch.stack([torch.randperm(b, generator=generator, device=dev) for _ in range(d)], dim=1).to(z.device)
    return torch.gather(z, 0, perms)


def factor_tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """TC_D = mean(logit_0 - logit_1) = mean log(D / (1 - D)) from the discriminator's logits [B, 2]."""
    _logits(logits, "logits", "factor_tc_estimate")
    return (logits[:, 0] - logits[:, 1]).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_permuted: torch.Tensor) -> torch.Tensor:
    """0.5 (CE(real, class 0) + CE(permuted, class 1)), the discriminator's cross-entropy (Alg. 2)."""
    for name, t in (("logits_real", logits_real), ("logits_permuted", logits_permuted)):
        _logits(t, name, "discriminator_loss")
    zeros = torch.zeros(logits_real.shape[0], dtype=torch.long, device=logits_real.device)
    ones = torch.ones(logits_permuted.shape[0], dtype=torch.long, device=logits_permuted.device)
    return 0.5 * (F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_permuted, ones))


def discriminator_accuracy(logits_real: torch.Tensor, logits_permuted: torch.Tensor) -> torch.Tensor:
    """The mean of the two classes' accuracies (a real z called class 0, a permuted one class 1)."""
    for name, t in (("logits_real", logits_real), ("logits_permuted", logits_permuted)):
        _logits(t, name, "discriminator_accuracy")
    return 0.5 * ((logits_real.argmax(1) == 0).float().mean() + (logits_permuted.argmax(1) == 1).float().mean())


class FactorDiscriminator(nn.Module):
    """MLP latent_dim -> ``hidden`` x ``layers`` (leaky ReLU 0.2) -> 2 logits."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        for name, v in (("latent_dim", latent_dim), ("hidden", hidden), ("layers", layers)):
            positive_int(v, name)
        mods: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        mods.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@dataclasses.dataclass
class FactorVAEConfig(VAENetConfig):
    """``gamma``: the TC weight (disentanglement_lib grid 10, 20, 30, 40, 50, 100; default 40, one of them).
    Discriminator: ``disc_hidden`` 1000 x ``disc_layers`` 6, Adam ``disc_lr`` 1e-4, ``disc_betas`` (0.5, 0.9)
    (Kim & Mnih App.; disentanglement_lib)."""

    gamma: Annotated[float, Ge(0)] = 40.0
    disc_hidden: Annotated[int, Ge(1)] = 1000
    disc_layers: Annotated[int, Ge(1)] = 6
    disc_lr: Annotated[float, Gt(0)] = 1e-4
    disc_betas: tuple[Annotated[float, Ge(0), Lt(1)], Annotated[float, Ge(0), Lt(1)]] = (0.5, 0.9)


class FactorVAE(VAEBase):
    config_class = FactorVAEConfig

    def __init__(self, config):
        super().__init__(config)
        cfg = self.config
        self.discriminator = FactorDiscriminator(cfg.latent_dim, cfg.disc_hidden, cfg.disc_layers)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def discriminator_optimizer_settings(self) -> dict:
        return {"lr": self.config.disc_lr, "betas": tuple(self.config.disc_betas)}

    def _objective(self, parts, step, generator):
        cfg = self.config
        z = parts["z"]
        if z.shape[0] < 2:
            raise ValueError("FactorVAE.loss: the permutation needs a batch of at least 2 images")
        kl = self._kl(parts["mu"], parts["logvar"])
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        tc = factor_tc_estimate(functional_call(self.discriminator, frozen, (z,)))
        zd = z.detach()
        logits_real = self.discriminator(zd)
        logits_perm = self.discriminator(permute_dims(zd, generator=generator))
        d_loss = discriminator_loss(logits_real, logits_perm)
        acc = discriminator_accuracy(logits_real, logits_perm)
        return {"loss": parts["recon"] + kl + cfg.gamma * tc, "disc_loss": d_loss, "recon": parts["recon"],
                "kl": kl, "tc": tc, "disc_accuracy": acc}
