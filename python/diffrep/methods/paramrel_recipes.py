"""ParamReL recipes: the papers' settings (ParamReL Table 5) and small CPU recipes.

Table 5 (50 epochs on an H100): latent dim / batch / lr and the U-Net's channel multipliers and
base width per dataset. Gaps filled as in bfn-paramrel.md §3.8: sigma1 from the BFN code's bin rule
(min_variance 1e-6 for 256 bins, 1e-3 for 16 bins), sqrt_beta1 = 3 for binarised data, 2 residual
blocks per level, attention at the bottleneck only (ParamReL App. C.2), (gamma_MI, lambda_agg) =
(1, 0.01) (SepDiff Table 2), the encoder the same down-path as the decoder, EMA 0.9999 (BFN code).
Step counts are 50 epochs of the training split at the recipe's batch size.

CPU recipes: ``paramrel/dsprites`` (ParamReL_d, K = 2, procedural dSprites max-pooled to 32 x 32,
10 latent dimensions; the quickstart's model) and ``paramrel/digits`` (binarised digits, 16 x 16).
"""

from __future__ import annotations

import dataclasses
import math

from ..bfn.config import BFNDataConfig, make_flow
from ..config import Config, ConfigError, register_recipe
from ..train.config import TrainConfig
from .paramrel import ParamReL, ParamReLConfig, decoder_unet
from .paramrel_nets import ParamRelEncoderConfig

__all__ = ["ParamReLRecipeConfig", "build", "paramrel_config"]


@dataclasses.dataclass
class ParamReLRecipeConfig(Config):
    """model + dataset by name (``diffrep.data.load(dataset, **dataset_options)``), optionally pooled
    by ``pool`` (:class:`diffrep.methods.paramrel_data.Pooled`) + training."""

    model: ParamReLConfig = dataclasses.field(default_factory=ParamReLConfig)
    dataset: str = "dsprites"
    dataset_options: dict = dataclasses.field(default_factory=dict)
    pool: int = 1
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self) -> None:
        if self.pool < 1:
            raise ConfigError("pool", f"must be >= 1, got {self.pool}")


def build_dataset(cfg: ParamReLRecipeConfig):
    from .. import data
    from .paramrel_data import Pooled

    ds = data.load(cfg.dataset, **cfg.dataset_options)
    return Pooled(ds, cfg.pool) if cfg.pool > 1 else ds


def build(cfg: ParamReLRecipeConfig):
    return ParamReL(cfg.model), build_dataset(cfg)


def paramrel_config(bfn: BFNDataConfig, latent_dim: int, base: int, mult: tuple, *, res_blocks: int = 2,
                    groups: int = 32, dropout: float = 0.0, **fields) -> ParamReLConfig:
    """A ParamReL config whose encoder and decoder share the U-Net's base width and multipliers."""
    cond = fields.get("cond", "adagn_eq12")
    unet = decoder_unet(bfn, latent_dim, cond, fields.get("xattn_tokens", 4), model_channels=base,
                        channel_mult=tuple(mult), num_res_blocks=res_blocks, attention_resolutions=(),
                        middle_attention=True, num_groups=groups, dropout=dropout)
    enc_in = bfn.channels if fields.get("encoder_input") == "x" else make_flow(bfn).input_channels(bfn.channels)
    enc = ParamRelEncoderConfig(image_size=bfn.image_size, in_channels=enc_in,
                                model_channels=base, channel_mult=tuple(mult), num_res_blocks=res_blocks,
                                num_groups=groups)
    return ParamReLConfig(bfn=bfn, latent_dim=latent_dim, encoder_net=enc, unet=unet, **fields)


def _paper_train(n_train: int, batch: int, lr: float, epochs: int = 50) -> TrainConfig:
    return TrainConfig(steps=math.ceil(epochs * n_train / batch), batch_size=batch, lr=lr, betas=(0.9, 0.99),
                       weight_decay=0.01, grad_clip=5.0, ema_decay=0.9999, num_workers=4, log_every=100,
                       ckpt_every=5000, sample_every=10000, num_samples=16)


def _binary(name: str, size: int = 28):
    bfn = BFNDataConfig(data="discrete", image_size=size, channels=1, num_classes=2, sqrt_beta1=3.0)
    return ParamReLRecipeConfig(model=paramrel_config(bfn, 32, 32, (1, 2, 4), sample_steps=1000),
                                dataset=name, dataset_options={"split": "train", "binarize": "dynamic"},
                                train=_paper_train(60000, 128, 1e-4))


def bmnist():
    return _binary("mnist")


def bfashionmnist():
    return _binary("fashion_mnist")


def celeba64():
    bfn = BFNDataConfig(data="discretised", image_size=64, channels=3, num_bins=256, sigma1=1e-3)
    return ParamReLRecipeConfig(model=paramrel_config(bfn, 64, 64, (1, 2, 2, 2), sample_steps=1000),
                                dataset="celeba", dataset_options={"split": "train", "size": 64},
                                train=_paper_train(162770, 64, 2e-4))


def shapes3d64():
    bfn = BFNDataConfig(data="discretised", image_size=64, channels=3, num_bins=256, sigma1=1e-3)
    return ParamReLRecipeConfig(model=paramrel_config(bfn, 32, 64, (1, 2, 2, 2), sample_steps=1000),
                                dataset="shapes3d", train=_paper_train(480000, 64, 2e-4))


def cifar10():
    bfn = BFNDataConfig(data="discretised", image_size=32, channels=3, num_bins=16, sigma1=math.sqrt(1e-3))
    return ParamReLRecipeConfig(model=paramrel_config(bfn, 32, 32, (1, 2, 4), sample_steps=1000),
                                dataset="cifar10", dataset_options={"split": "train"},
                                train=_paper_train(50000, 128, 1e-4))


# The CPU recipes read the clean data in the encoder (the public code's ``encoder_input="x"``) and start
# the posterior nearly deterministic (``encoder_logvar_init=-6``). Reason, measured on 16 x 16 digits
# (150 steps, z = 8): the paper's self-encoder reads theta_t, which the decoder also reads, so z adds
# no information and in short runs its mean collapses (std over inputs 0.0015; 0.025 with the log-
# variance initialised at -6) while the x-encoder's does not (0.24). The paper recipes keep theta_t.
# Generation then draws z from the prior (``z_source="prior_fixed"``, one draw per image): the
# x-encoder cannot re-encode during generation. The objective keeps the papers' weights
# (gamma_MI, lambda_agg) = (1, 0.01). Measured on this recipe at 500 steps (scripts/validate_paramrel.py,
# benches/results/paramrel_validation_cpu_*.json): reconstructions by reverse-sampling are near exact
# (L1 0.001), z is more informative than an untrained encoder's (DCI informativeness 0.29 vs 0.19,
# FactorVAE 0.27 vs 0) but not disentangled (MIG 0.004 vs 0.025); KL weights 0.02 / 0.1 gave the same.
_CPU_FIELDS = dict(encoder_input="x", encoder_logvar_init=-6.0, z_source="prior_fixed")


def dsprites_cpu():
    """ParamReL_d on procedural dSprites at 32 x 32 (max-pooled), sized for ~4 minutes on 2 CPU cores."""
    bfn = BFNDataConfig(data="discrete", image_size=32, channels=1, num_classes=2, sqrt_beta1=3.0)
    model = paramrel_config(bfn, 10, 16, (1, 2, 2), res_blocks=1, groups=8, sample_steps=20, **_CPU_FIELDS)
    return ParamReLRecipeConfig(model=model, dataset="dsprites", pool=2,
                                train=TrainConfig(steps=1200, batch_size=32, lr=2e-3, warmup_steps=50,
                                                  lr_schedule="cosine", grad_clip=1.0, ema_decay=0.0,
                                                  log_every=50, ckpt_every=0, sample_every=0, device="auto"))


def digits_cpu():
    """ParamReL_d on binarised digits at 16 x 16, a minute or two on a CPU."""
    bfn = BFNDataConfig(data="discrete", image_size=16, channels=1, num_classes=2, sqrt_beta1=3.0)
    model = paramrel_config(bfn, 8, 16, (1, 2), res_blocks=1, groups=8, sample_steps=20, **_CPU_FIELDS)
    return ParamReLRecipeConfig(model=model, dataset="digits", dataset_options={"size": 16, "split": "train"},
                                train=TrainConfig(steps=600, batch_size=32, lr=2e-3, warmup_steps=30,
                                                  lr_schedule="cosine", ema_decay=0.0, log_every=50,
                                                  ckpt_every=0, device="auto"))


for _name, _fn, _desc, _cpu in (
    ("paramrel/dsprites", dsprites_cpu, "ParamReL_d on dSprites 32x32 (the quickstart model); CPU, minutes", True),
    ("paramrel/digits", digits_cpu, "ParamReL_d on 16x16 binarised digits; CPU, a minute or two", True),
    ("paramrel/bmnist", bmnist, "ParamReL Table 5: binarised MNIST, K=2, z=32, batch 128, lr 1e-4", False),
    ("paramrel/bfashionmnist", bfashionmnist, "ParamReL Table 5: binarised FashionMNIST, K=2, z=32", False),
    ("paramrel/celeba64", celeba64, "ParamReL Table 5: CelebA 64, 256 bins, z=64, batch 64, lr 2e-4", False),
    ("paramrel/shapes3d64", shapes3d64, "ParamReL Table 5: 3D Shapes 64, 256 bins, z=32, batch 64", False),
    ("paramrel/cifar10", cifar10, "ParamReL Table 5: CIFAR-10 32, 16 bins, z=32, batch 128, lr 1e-4", False),
):
    register_recipe(_name, _fn, build, _desc, cpu_friendly=_cpu)
