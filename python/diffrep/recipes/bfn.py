"""Plain BFN recipes: a CPU recipe on binarised digits and the BFN reference configurations."""

from __future__ import annotations

import dataclasses

from ..bfn.config import BFNDataConfig, unet_io
from ..bfn.model import BFN, BFNConfig
from ..config import Config
from ..nn.unet import UNetConfig
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import DataRoot, load_named

__all__ = ["BFNRecipeConfig", "build", "build_dataset", "digits", "mnist_discrete", "cifar10_discretised", "reference_grad_clip",
           "RECIPES"]


@dataclasses.dataclass
class BFNRecipeConfig(Config):
    """A recipe: the model, a dataset by name (``diffrep.data.load(dataset, root=data.root,
    **dataset_options)``; ``--data.root PATH``, default ``$DIFFREP_DATA``) and training."""

    model: BFNConfig = dataclasses.field(default_factory=BFNConfig)  # the BFN model (docs/kernels/bfn.md)
    dataset: str = "digits"  # dataset name for diffrep.data.load (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)


def build_dataset(cfg: BFNRecipeConfig):
    return load_named(cfg.dataset, cfg.dataset_options, cfg.data)


def build(cfg: BFNRecipeConfig):
    return BFN(cfg.model), build_dataset(cfg)


def reference_grad_clip(b: BFNDataConfig) -> float:
    """The BFN code's gradient clipping (``grad_clip_norm: 5.0`` in every config) in diffrep's loss units.

    The BFN code clips the gradient of its loss averaged over the batch *and the D data dimensions*;
    ``BFN.loss`` (and ``ParamReL.loss``) sum over the data dimensions, so their gradient is D times larger
    and the same clip is 5 D. AdamW's update does not change when the loss is scaled by a constant, so
    clipping at 5 D here reproduces the reference's optimisation exactly (a clip of 5 would clip at
    5/D in the reference's units: always active, 0.0064 for MNIST; docs/kernels/bfn.md#reference-defaults)."""
    return 5.0 * b.num_dims


def digits() -> BFNRecipeConfig:
    b = BFNDataConfig(data="discrete", image_size=16, channels=1, num_classes=2, sqrt_beta1=3.0)
    unet = UNetConfig(**{**unet_io(b), "model_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
                         "attention_resolutions": (), "middle_attention": False, "num_groups": 8})
    return BFNRecipeConfig(model=BFNConfig(bfn=b, unet=unet, sample_steps=50), dataset="digits",
                           dataset_options={"size": 16, "split": "train"},
                           train=TrainConfig(steps=400, batch_size=32, lr=1e-3, warmup_steps=20, ema_decay=0.99,
                                             log_every=25, ckpt_every=0, sample_every=200, num_samples=16))


def mnist_discrete() -> BFNRecipeConfig:
    b = BFNDataConfig(data="discrete", image_size=28, channels=1, num_classes=2, sqrt_beta1=3.0)
    unet = UNetConfig(**{**unet_io(b), "model_channels": 128, "channel_mult": (1, 2, 2), "num_res_blocks": 2,
                         "attention_resolutions": (14, 7), "dropout": 0.5, "num_groups": 32})
    return BFNRecipeConfig(model=BFNConfig(bfn=b, unet=unet, sample_steps=784), dataset="mnist",
                           dataset_options={"split": "train", "binarize": "dynamic"},
                           train=TrainConfig(steps=1_000_000, batch_size=512, lr=1e-4, betas=(0.9, 0.98),
                                             weight_decay=0.01, grad_clip=reference_grad_clip(b), ema_decay=0.9999))


def cifar10_discretised() -> BFNRecipeConfig:
    b = BFNDataConfig(data="discretised", image_size=32, channels=3, num_bins=256, sigma1=1e-3)
    unet = UNetConfig(**{**unet_io(b), "model_channels": 128, "channel_mult": (1, 2, 2, 2), "dropout": 0.1,
                         "attention_resolutions": (16,)})
    return BFNRecipeConfig(model=BFNConfig(bfn=b, unet=unet, sample_steps=10), dataset="cifar10",
                           dataset_options={"split": "train"},
                           train=TrainConfig(steps=1_000_000, batch_size=32, lr=2e-4, betas=(0.9, 0.99),
                                             weight_decay=0.01, grad_clip=reference_grad_clip(b), ema_decay=0.9999))


RECIPES = (
    Recipe("bfn/digits", digits, build, "discrete BFN (K=2) on 16x16 binarised digits; CPU, minutes", cpu_friendly=True),
    Recipe("bfn/mnist-discrete", mnist_discrete, build, "BFN reference mnist_discrete.yaml (sqrt_beta1=3; "
           "improved-DDPM U-Net stand-in)"),
    Recipe("bfn/cifar10-discretised", cifar10_discretised, build,
           "BFN reference cifar10_discretized_256bins (U-Net stand-in for UNetVDM)"),
)
