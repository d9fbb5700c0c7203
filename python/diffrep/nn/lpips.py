"""LPIPS perceptual distance (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", Eq. 1) on a VGG16 trunk, for the VQ-GAN reconstruction loss.

d(x, y) = sum_l mean_{h,w} || w_l * (f_l(x) - f_l(y)) ||^2, with f_l the VGG16 activations after
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 of the input shifted and scaled by fixed per-channel
constants, each unit-normalised over channels, and w_l learned non-negative 1x1 weights (one per channel).

No weights ship with diffrep and nothing is downloaded. The network is defined here and its weights
are read only from a local file: ``LPIPS.from_file(path)``, or :func:`resolve_lpips_weights` which takes
``path`` or else the ``DIFFREP_LPIPS_WEIGHTS`` environment variable. The file is a ``.safetensors`` or
a torch state-dict file (loaded with ``weights_only=True``) holding

- ``features.{i}.weight`` / ``features.{i}.bias`` for the 13 VGG16 convolutions, with torchvision's
  ``vgg16().features`` indices (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), and
- ``lin{l}.model.1.weight`` (shape [1, C_l, 1, 1], l = 0..4), the LPIPS v0.1 "vgg" linear layers.

Both naming schemes are the ones the public releases use, so such a file is the merge of torchvision's
ImageNet VGG16 ``features`` state dict (keys prefixed ``features.``) and the LPIPS ``vgg.pth`` file;
other keys (e.g. ``classifier.*``) are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .images import check_images
from .._checks import a_or_an

__all__ = ["LPIPS", "LPIPS_ENV", "resolve_lpips_weights", "cached_lpips", "VGG16_CHANNELS"]

LPIPS_ENV = "DIFFREP_LPIPS_WEIGHTS"
VGG16_CHANNELS = (64, 128, 256, 512, 512)
_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per VGG16 stage
_EXPECTED = ("a .safetensors or torch state-dict file with the VGG16 'features.<i>.weight/bias' tensors "
             "(torchvision layout) and the LPIPS linear layers 'lin0.model.1.weight' .. 'lin4.model.1.weight'")


def resolve_lpips_weights(path: str | os.PathLike | None = None) -> Path:
    """The LPIPS weight file: ``path``, else ``$DIFFREP_LPIPS_WEIGHTS``; FileNotFoundError when absent."""
    source = "perceptual_weights"
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path or None, got {type(path).__name__}")
    if path is None or str(path) == "":
        path, source = os.environ.get(LPIPS_ENV) or None, f"${LPIPS_ENV}"
    if path is None:
        raise FileNotFoundError(
            f"LPIPS weights are needed (perceptual_weight > 0) but no file was given: set the config field "
            f"perceptual_weights or the environment variable {LPIPS_ENV} to {_EXPECTED}. Nothing is downloaded; "
            f"set perceptual_weight = 0 to train without the perceptual term.")
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"LPIPS weight file {str(p)!r} (from {source}) does not exist; expected {_EXPECTED}.")
    return p


class _Lin(nn.Module):
    """1x1 channel weighting of one stage (``lin{l}.model.1.weight``); the dropout is inactive in eval."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """``lpips(x, y)`` -> per-sample distance [B] for images in [-1, 1]; frozen, always in eval mode."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        layers: list[nn.Module] = []
        self.taps: list[int] = []  # index of the ReLU closing each stage
        c_in = 3
        for stage, (c, n) in enumerate(zip(VGG16_CHANNELS, _BLOCKS)):
            if stage:
                layers.append(nn.MaxPool2d(2, 2))
            for _ in range(n):
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
                c_in = c
            self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        for i, c in enumerate(VGG16_CHANNELS):
            self.add_module(f"lin{i}", _Lin(c))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen network: dropout and the like stay off
        return super().train(False)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None) -> "LPIPS":
        """Build and load from ``path`` (or ``$DIFFREP_LPIPS_WEIGHTS``); every expected tensor must be present."""
        p = resolve_lpips_weights(path)
        if p.suffix == ".safetensors":
            from .pretrained import load_safetensors_checked

            state = load_safetensors_checked(p)  # a corrupt file: ValueError naming it
        else:
            try:
                state = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ValueError(f"LPIPS weight file {p} cannot be read as a torch state dict: {exc}") from None
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ValueError(f"LPIPS weight file {p} holds {a_or_an(type(state).__name__)}, not a state dict")
        model = cls()
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"LPIPS weight file {p} lacks {len(missing)} tensors, e.g. {missing[:3]}; expected {_EXPECTED}")
        wrong = [k for k in own if not isinstance(state[k], torch.Tensor) or not state[k].is_floating_point()]
        if wrong:
            raise ValueError(f"LPIPS weight file {p}: {wrong[:3]} are not floating-point tensors "
                             f"(e.g. {type(state[wrong[0]]).__name__}); expected {_EXPECTED}")
        bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"LPIPS weight file {p}: wrong shapes for {bad[:3]} "
                             f"(e.g. {tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)})")
        nonfinite = [k for k in own if not bool(torch.isfinite(state[k]).all())]
        if nonfinite:  # NaN weights gave a NaN perceptual loss at every step
            raise ValueError(f"LPIPS weight file {p}: non-finite values in {nonfinite[:3]}")
        model.load_state_dict({k: state[k] for k in own})
        return model

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised (over channels) activations at the five relu stages."""
        h = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for name, v in (("x", x), ("y", y)):
            check_images(v, channels=3, finite=False, name=name, who="LPIPS")
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 16:
            raise ValueError(f"LPIPS: expected two [B, 3, H, W] images of one shape with H, W >= 16 (four 2x2 "
                             f"poolings), got {tuple(x.shape)} and {tuple(y.shape)}")
        total = x.new_zeros(x.shape[0])
        for lin, f in zip((self.lin0, self.lin1, self.lin2, self.lin3, self.lin4), self.stages(torch.cat([x, y]))):
            a, b = f.chunk(2)
            total = total + lin((a - b).pow(2)).mean(dim=(1, 2, 3))
        return total


def cached_lpips(cache: list, path: str | os.PathLike | None, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample LPIPS(x, y) with the network kept in ``cache``, a plain list its owner holds so the network stays
    out of the owner's state dict, EMA copy and optimizer: read from ``path`` (:meth:`LPIPS.from_file`) on first
    use and moved to x's device."""
    if not cache:
        cache.append(LPIPS.from_file(path))
    net = cache[0]
    if net.shift.device != x.device:
        net.to(x.device)
    return net(x, y)
