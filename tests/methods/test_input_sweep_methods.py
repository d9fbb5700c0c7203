"""Input sweep of the method surface (docs/architecture.md#inputs): every public verb of every model, on a
tiny config, called once with valid arguments and then with one argument at a time replaced by a bad value.

A bad call passes when it raises ValueError/TypeError (ConfigError is a ValueError) whose message names the
argument, or, for a value the docs accept (a float16 image, cast to the model's dtype), when it returns a
finite result. It fails on any other exception (AttributeError, IndexError, torch's RuntimeError, an
assert), on an unnamed argument, and on a bad value silently accepted.
"""

from __future__ import annotations

import re

import pytest
import torch

from helpers import tiny_paramrel, tiny_sami, tiny_unet, untrained_on_purpose

NAN, INF = float("nan"), float("inf")


# -- tiny models -------------------------------------------------------------------------------
def _toy():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig

    return ToyDDPM(ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=1),
                                 schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=10), sample_steps=1))


def _multibeta():
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    m = untrained_on_purpose(MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5,
                                   vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})))
    return m.set_phase(2)


def _encdiff():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.dyga import DyGAConfig
    from diffrep.methods.encdiff import EncDiff, EncDiffConfig
    from diffrep.methods.encdiff_nets import SmallExtractorConfig
    from diffrep.nn import UNetConfig

    un = UNetConfig(image_size=16, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                    attention_resolutions=(8,), num_heads=1, num_groups=4, context_dim=4)
    sx = SmallExtractorConfig(image_size=16, num_units=2, token_dim=4, channels=(4, 8), hidden=8, mlp_hidden=(4,))
    return EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=None, conditioning="none", sample_steps=2,
                                 dyga=DyGAConfig(num_units=2, token_dim=4, n_components=2, min_mass=2),
                                 schedule=NoiseScheduleConfig(kind="linear", num_timesteps=10)))


def _dyga():
    from diffrep.methods.dyga import DyGA, DyGAConfig

    m = DyGA(DyGAConfig(num_units=2, token_dim=4, n_components=2, min_mass=2))
    m.fit(torch.randn(16, 2, 4, generator=gen(3)))  # anchors, for assign and forward
    return m


def _cls(module, name, **fields):
    import importlib

    cls = getattr(importlib.import_module(f"diffrep.methods.{module}"), name)
    return lambda: cls(cls.config_class(**fields))


FACTORIES = {
    "toy": _toy,
    "diffae": _cls("diffae", "DiffAE", sample_steps=1),
    "infodiffusion": _cls("infodiffusion", "InfoDiffusion", sample_steps=1),
    "disdiff": lambda: untrained_on_purpose(_cls("disdiff", "DisDiff", sample_steps=1)()),
    "encdiff": _encdiff,
    "multibeta": _multibeta,
    "sami": lambda: tiny_sami(dtype=torch.float32),
    "vae": _cls("vae.vae", "VAE", image_size=32),
    "fsq": _cls("vae.fsq_ae", "FSQAE", image_size=32),
    "dyga": lambda: _dyga(),
    "paramrel": lambda: tiny_paramrel(),
}


_MODELS = {}


def model(name):
    """The shared tiny model ``name`` (built once, seeded)."""
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = FACTORIES[name]().eval()
    return _MODELS[name]


def fresh(name):
    """A new tiny model ``name``, for verbs that change the model; it replaces the shared one."""
    _MODELS.pop(name, None)
    return model(name)


def image_shape(m):
    c = m.config
    if hasattr(c, "image_channels"):
        return c.image_channels, c.image_size
    for part in (getattr(c, "unet", None), getattr(c, "encoder", None), getattr(c, "vae", None),
                 getattr(c, "denoiser", None), c):
        if part is not None and hasattr(part, "in_channels") and hasattr(part, "image_size"):
            return part.in_channels, part.image_size
    raise AssertionError(f"no image shape for {type(m).__name__}")


def images(m, n=2, seed=1):
    C, H = image_shape(m)
    return torch.rand((n, C, H, H), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- bad values by kind of argument -------------------------------------------------------------
def _with(v, value):
    v = v.clone(memory_format=torch.contiguous_format)
    v.view(-1)[0] = value
    return v


def _wider(v):
    return torch.cat([v, v[..., :1]], -1)


RAISE, EITHER = "raise", "either"
BAD = {
    # an image batch [B, C, H, W]
    "image": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("list", lambda v: v.tolist(), EITHER),
              ("int", lambda v: v.long(), RAISE), ("complex", lambda v: v.to(torch.complex64), RAISE),
              ("f16", lambda v: v.half(), EITHER), ("nan", lambda v: _with(v, NAN), RAISE),
              ("inf", lambda v: _with(v, INF), RAISE), ("3d", lambda v: v[0], RAISE), ("5d", lambda v: v[None], RAISE),
              ("empty", lambda v: v[:0], RAISE), ("channels", lambda v: torch.cat([v, v[:, :1]], 1), RAISE),
              ("size", lambda v: v[..., : v.shape[-1] // 2, : v.shape[-1] // 2], RAISE)],
    # a float tensor of codes / features [B, ..., D]
    "codes": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("int", lambda v: v.long(), EITHER),
              ("complex", lambda v: v.to(torch.complex64), RAISE), ("nan", lambda v: _with(v, NAN), RAISE),
              ("inf", lambda v: _with(v, INF), RAISE), ("fewer_dims", lambda v: v[0], RAISE),
              ("more_dims", lambda v: v[None], RAISE), ("empty", lambda v: v[:0], RAISE), ("width", _wider, RAISE)],
    # one vector [D]
    "vector": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("nan", lambda v: _with(v, NAN), RAISE),
               ("inf", lambda v: _with(v, INF), RAISE), ("zero", lambda v: v * 0, RAISE), ("width", _wider, RAISE)],
    # binary labels [B]
    "labels": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("nan", lambda v: _with(v.double(), NAN), RAISE),
               ("not_binary", lambda v: v + 2, RAISE)],
    # a beta of the multi-beta VAE: a number in [0, B] (or one per example)
    "beta": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("nan", lambda v: NAN, RAISE),
             ("inf", lambda v: INF, RAISE), ("negative", lambda v: -1.0, RAISE), ("too_large", lambda v: 1e9, RAISE),
             ("bool", lambda v: True, RAISE)],
    # grid indices [B] of the latent denoiser
    "grid_i": [("none", lambda v: None, RAISE), ("float", lambda v: v.float(), RAISE), ("negative", lambda v: v - 100, RAISE),
               ("too_large", lambda v: v + 10**6, RAISE)],
    # a (lo, hi) pair of timesteps
    "range": [("none", lambda v: None, RAISE), ("reversed", lambda v: (v[1], v[0]), RAISE), ("str", lambda v: "ab", RAISE),
              ("float", lambda v: (0.5, 3.5), RAISE), ("three", lambda v: (1, 2, 3), RAISE)],
    "phase": [("none", lambda v: None, RAISE), ("zero", lambda v: 0, RAISE), ("str", lambda v: "2", RAISE),
              ("float", lambda v: 2.0, RAISE), ("bool", lambda v: True, RAISE)],
    "epoch": [("none", lambda v: None, RAISE), ("negative", lambda v: -1, RAISE), ("str", lambda v: "0", RAISE),
              ("float", lambda v: 0.5, RAISE)],
    # a second tensor whose batch must match the first
    "paired": [("batch", lambda v: v[:1], RAISE)],
    # timesteps [B] (integers in [0, T))
    "t": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("negative", lambda v: v - 1000, RAISE),
          ("too_large", lambda v: v + 10**6, RAISE), ("2d", lambda v: v[:, None, None], RAISE),
          ("batch", lambda v: v[:1], RAISE)],
    # a count >= 1
    "count": [("none", lambda v: None, RAISE), ("str", lambda v: "2", RAISE), ("float", lambda v: 2.5, RAISE),
              ("bool", lambda v: True, RAISE), ("zero", lambda v: 0, RAISE), ("negative", lambda v: -1, RAISE)],
    # an optional count (None = the default)
    "opt_count": [("str", lambda v: "2", RAISE), ("float", lambda v: 2.5, RAISE), ("bool", lambda v: True, RAISE),
                  ("zero", lambda v: 0, RAISE), ("negative", lambda v: -1, RAISE)],
    # a finite real number
    "scalar": [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("nan", lambda v: NAN, RAISE),
               ("inf", lambda v: INF, RAISE)],
    "generator": [("str", lambda v: "x", RAISE), ("int", lambda v: 3, RAISE)],
    "step": [("str", lambda v: "x", RAISE), ("float", lambda v: 2.5, RAISE)],
    # an index into the code (a dimension, a unit)
    "index": [("none", lambda v: None, RAISE), ("str", lambda v: "0", RAISE), ("float", lambda v: 0.5, RAISE),
              ("too_large", lambda v: 10**6, RAISE), ("too_small", lambda v: -10**6, RAISE)],
    # a sequence of finite reals
    "floats": [("none", lambda v: None, RAISE), ("str", lambda v: "ab", RAISE), ("empty", lambda v: [], RAISE),
               ("nan", lambda v: [NAN], RAISE), ("nested", lambda v: [[0.5]], RAISE)],
    # a sequence of indices
    "indices": [("str", lambda v: "0", RAISE), ("empty", lambda v: [], RAISE), ("too_large", lambda v: [10**6], RAISE),
                ("float", lambda v: [0.5], RAISE)],
    # one of a few names
    "choice": [("none", lambda v: None, RAISE), ("bogus", lambda v: "bogus", RAISE), ("int", lambda v: 3, RAISE)],
}


# -- the surface: (model, verb, valid arguments, kinds, aliases a message may use) ----------------
def T(m, n=2):
    return torch.tensor([1, 3][:n])


SURFACE = []


def verb(model_name, name, args, kinds, names=None, mutates=False, accepts=()):
    """One verb of the surface: ``args(model)`` its valid keyword arguments, ``kinds`` the kind of each argument
    swept, ``names`` other words a message may use for an argument, ``mutates`` whether a call changes the model
    (it then gets a fresh one), ``accepts`` the "argument-label" cases the verb's docs accept."""
    SURFACE.append((model_name, name, args, kinds, names or {}, mutates, set(accepts)))


# toy DDPM
verb("toy", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("toy", "sample", lambda m: dict(n=2, generator=gen(), num_steps=1, sampler="ddim"),
     dict(n="count", generator="generator", num_steps="opt_count", sampler="choice"))

# DiffAE (the z statistics fitted where a verb needs them)
def _diffae(m):
    if not bool(m.z_stats_fitted):
        with torch.no_grad():
            m.fit_latent_stats(m.encode(images(m, 4, seed=5)))
    return m


def _z(m, x=None):
    with torch.no_grad():
        return m.encode(images(m) if x is None else x)


STEPS = dict(num_steps="opt_count")
verb("diffae", "set_stage", lambda m: dict(stage="autoencoder"), dict(stage="choice"), mutates=True)
verb("diffae", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("diffae", "eps", lambda m: dict(x_t=images(m), t=T(m), z_sem=_z(m)),
     dict(x_t="image", t="t", z_sem=("codes", "paired")))
verb("diffae", "encode_stochastic", lambda m: dict(x=images(m), z_sem=_z(m), num_steps=1),
     dict(x="image", z_sem=("?codes", "paired"), **STEPS))
verb("diffae", "decode", lambda m: dict(z_sem=_z(m), x_T=images(m), num_steps=1, generator=gen()),
     dict(z_sem="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("diffae", "reconstruct", lambda m: dict(x=images(m), num_steps=1, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("diffae", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("diffae", "normalize_z", lambda m: dict(z=_z(_diffae(m))), dict(z="codes"))
verb("diffae", "denormalize_z", lambda m: dict(z=_z(_diffae(m))), dict(z="codes"))
verb("diffae", "fit_latent_stats", lambda m: dict(z_sem=_z(m)), dict(z_sem="codes"))  # a refit
verb("diffae", "latent_loss", lambda m: dict(x0=images(_diffae(m)), generator=gen()), dict(x0="image", generator="generator"))
verb("diffae", "sample_latent", lambda m: dict(n=2 + 0 * bool(_diffae(m)), generator=gen(), num_steps=1),
     dict(n="count", generator="generator", **STEPS))
verb("diffae", "sample", lambda m: dict(n=2 + 0 * bool(_diffae(m)), generator=gen(), num_steps=1),
     dict(n="count", generator="generator", **STEPS))
verb("diffae", "interpolate", lambda m: dict(x_a=images(m), x_b=images(m, seed=2), alphas=[0.0, 0.5], num_steps=1),
     dict(x_a="image", x_b=("image", "paired"), alphas="floats", **STEPS),
     accepts=("alphas-nested",))  # the weights are flattened (diffrep.viz.slerp's batched form)
verb("diffae", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), dims=[0, 1], num_steps=1),
     dict(x="image", source=("image", "paired"), dims="indices", **STEPS))
verb("diffae", "traverse", lambda m: dict(x=images(_diffae(m)), dim=0, values=[-1.0, 1.0], num_steps=1),
     dict(x="image", dim="index", values="floats", **STEPS))
verb("diffae", "fit_attribute", lambda m: dict(z_sem=_z(_diffae(m)), labels=torch.tensor([0, 1]), steps=1, lr=0.1,
                                               weight_decay=0.0),
     dict(z_sem="codes", labels=("labels", "paired"), steps="count", lr="scalar", weight_decay="scalar"))
verb("diffae", "manipulate", lambda m: dict(x=images(_diffae(m)), direction=torch.ones(m.config.latent_dim), scale=1.0,
                                            num_steps=1),
     dict(x="image", direction="vector", scale="scalar", **STEPS))

# InfoDiffusion
verb("infodiffusion", "posterior", lambda m: dict(x=images(m)), dict(x="image"))
verb("infodiffusion", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("infodiffusion", "eps", lambda m: dict(x_t=images(m), t=T(m), z=_z(m)), dict(x_t="image", t="t", z=("codes", "paired")))
verb("infodiffusion", "mmd", lambda m: dict(z=_z(m), prior_samples=torch.randn(2, m.config.latent_dim)),
     dict(z="codes", prior_samples="codes"))
verb("infodiffusion", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("infodiffusion", "decode", lambda m: dict(z=_z(m), x_T=images(m), num_steps=1, generator=gen()),
     dict(z="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("infodiffusion", "encode_stochastic", lambda m: dict(x=images(m), z=_z(m), num_steps=1),
     dict(x="image", z=("?codes", "paired"), **STEPS))
verb("infodiffusion", "reconstruct", lambda m: dict(x=images(m), num_steps=1, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("infodiffusion", "sample", lambda m: dict(n=2, generator=gen(), num_steps=1),
     dict(n="count", generator="generator", **STEPS))
verb("infodiffusion", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), dims=[0], num_steps=1),
     dict(x="image", source=("image", "paired"), dims="indices", **STEPS))
verb("infodiffusion", "traverse", lambda m: dict(x=images(m), dim=0, values=[-1.0, 1.0], num_steps=1),
     dict(x="image", dim="index", values="floats", **STEPS))


# DisDiff (the per-unit PCA fitted where a verb needs it)
def _disdiff(m):
    if not bool(m.pca_fitted):
        m.fit_code_pca(images(m, 4, seed=5))
    return m


def _units(m, x=None):
    with torch.no_grad():
        return m.encode_units(images(m) if x is None else x)


verb("disdiff", "set_stage", lambda m: dict(stage="pretrain"), dict(stage="choice"), mutates=True)
verb("disdiff", "to_diffusion_space", lambda m: dict(x=images(m)), dict(x="image"))
verb("disdiff", "to_images", lambda m: dict(x0=images(m)), dict(x0="image"))
verb("disdiff", "encode_units", lambda m: dict(x=images(m)), dict(x="image"))
verb("disdiff", "fit_code_pca", lambda m: dict(x=images(m, 4)), dict(x="image"))  # a refit
verb("disdiff", "align_units", lambda m: dict(units=_units(m), generator=gen()), dict(units="codes", generator="generator"))
verb("disdiff", "encode", lambda m: dict(x=images(_disdiff(m))), dict(x="image"))
verb("disdiff", "predict", lambda m: dict(x_t=images(m), t=T(m), units=_units(m)),
     dict(x_t="image", t="t", units=("?codes", "paired")))
verb("disdiff", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("disdiff", "eps_with_units", lambda m: dict(x_t=images(m), t=T(m), units=_units(m)),
     dict(x_t="image", t="t", units=("codes", "paired")))
verb("disdiff", "decode", lambda m: dict(units=_units(m), x_T=images(m), num_steps=1, generator=gen()),
     dict(units="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("disdiff", "encode_stochastic", lambda m: dict(x=images(m), units=_units(m), num_steps=1),
     dict(x="image", units=("?codes", "paired"), **STEPS))
verb("disdiff", "reconstruct", lambda m: dict(x=images(m), num_steps=1, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("disdiff", "sample", lambda m: dict(n=2, generator=gen(), num_steps=1),
     dict(n="count", generator="generator", **STEPS))
verb("disdiff", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), unit=1, num_steps=1, x_T=images(m)),
     dict(x="image", source=("image", "paired"), unit="index", x_T=("?image", "paired"), **STEPS))
verb("disdiff", "traverse", lambda m: dict(x=images(_disdiff(m)), unit=0, values=[-1.0, 1.0], num_steps=1),
     dict(x="image", unit="index", values="floats", **STEPS))

# the VAE family
verb("vae", "posterior", lambda m: dict(x=images(m)), dict(x="image"))
verb("vae", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("vae", "decode_logits", lambda m: dict(z=_z(m)), dict(z="codes"))
verb("vae", "decode", lambda m: dict(z=_z(m)), dict(z="codes"))
verb("vae", "reconstruct", lambda m: dict(x=images(m)), dict(x="image"))
verb("vae", "sample_codes", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("vae", "sample", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("vae", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("fsq", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("fsq", "indices", lambda m: dict(x=images(m)), dict(x="image"))
verb("fsq", "sample_codes", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("fsq", "decode", lambda m: dict(z=_z(m)), dict(z="codes"))
verb("fsq", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
# EncDiff (pixel space, no DyGA: the verbs' own checks; its token bank filled by one loss call)
def _tok(m, x=None):
    return m.tokens(images(m) if x is None else x)


def _banked(m):
    if int(m.bank_count) == 0:
        with torch.no_grad():
            m.loss(images(m), step=0, generator=gen())
    return m


verb("encdiff", "to_latent", lambda m: dict(x=images(m)), dict(x="image"))
verb("encdiff", "from_latent", lambda m: dict(z=images(m)), dict(z="image"))
verb("encdiff", "raw_tokens", lambda m: dict(x=images(m)), dict(x="image"))
verb("encdiff", "condition", lambda m: dict(c=_tok(m), generator=gen()), dict(c="codes", generator="generator"))
verb("encdiff", "eps", lambda m: dict(z_t=images(m), t=T(m), tokens=_tok(m)),
     dict(z_t="image", t="t", tokens=("codes", "paired")))
verb("encdiff", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))  # fills the token bank, harmlessly
verb("encdiff", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("encdiff", "tokens", lambda m: dict(x=images(m), aligned=False), dict(x="image"))
verb("encdiff", "pca_codes", lambda m: dict(x=images(m, 3), aligned=False, fit_on=_tok(m, images(m, 3, seed=4))),
     dict(x="image", fit_on="?codes"))
verb("encdiff", "generate", lambda m: dict(tokens=_tok(m), generator=gen(), x_T=images(m), steps=1),
     dict(tokens="codes", x_T=("?image", "paired"), generator="generator", steps="opt_count"))
verb("encdiff", "reconstruct", lambda m: dict(x=images(m), generator=gen(), steps=1),
     dict(x="image", generator="generator", steps="opt_count"))
verb("encdiff", "sample", lambda m: dict(n=2, generator=gen(), tokens=_tok(m), steps=1),
     dict(n="count", generator="generator", tokens="?codes", steps="opt_count"))
verb("encdiff", "interchange", lambda m: dict(source=images(m), target=images(m, seed=2), units=[0], generator=gen(),
                                              steps=1),
     dict(source="image", target=("image", "paired"), units="indices", generator="generator", steps="opt_count"))
verb("encdiff", "interpolate", lambda m: dict(xa=images(m), xb=images(m, seed=2), alphas=[0.0, 1.0], generator=gen(),
                                              steps=1),
     dict(xa="image", xb=("image", "paired"), alphas="floats", generator="generator", steps="opt_count"))
verb("encdiff", "attention_maps", lambda m: dict(x=images(m), generator=gen(), steps=1, size=8),
     dict(x="image", generator="generator", steps="opt_count", size="opt_count"))
verb("encdiff", "condition_reliance", lambda m: dict(x=images(m), t_range=(2, 8), generator=gen(), repeats=1),
     dict(x="image", t_range="range", generator="generator", repeats="count"))

# MultiBeta (phase 2), its VAE and its latent denoiser
BETA = "beta"
verb("multibeta", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("multibeta", "encode", lambda m: dict(x=images(m), beta=0.5, noise=True, generator=gen()),
     dict(x="image", beta="?beta", generator="generator"))
verb("multibeta", "decode", lambda m: dict(z=_z(m), beta=0.5), dict(z="codes", beta="?beta"))  # None: representation_beta
verb("multibeta", "denoise", lambda m: dict(z=_z(m), beta_from=0.5, beta_to=0.0, generator=gen()),
     dict(z="codes", beta_from="beta", beta_to="beta", generator="generator"))
verb("multibeta", "denoise_decode", lambda m: dict(z=_z(m), beta=0.5, generator=gen()),
     dict(z="codes", beta="?beta", generator="generator"))
verb("multibeta", "reconstruct", lambda m: dict(x=images(m), beta=0.5, generator=gen()),
     dict(x="image", beta="?beta", generator="generator"))
verb("multibeta", "sample", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("multibeta", "beta_sweep", lambda m: dict(x=images(m), betas=[0.0, 0.5], generator=gen()),
     dict(x="image", betas="floats", generator="generator"))
verb("multibeta", "edit", lambda m: dict(x=images(m), beta=0.5, direction=torch.ones(3), alphas=[0.0, 1.0], generator=gen()),
     dict(x="image", beta="?beta", direction="vector", alphas="floats", generator="generator"),
     accepts=("direction-zero",))  # a zero edit leaves the code as it is
verb("multibeta", "traverse", lambda m: dict(x=images(m), beta=0.5, dims=[0], values=[-1.0, 1.0], generator=gen()),
     dict(x="image", beta="?beta", dims="indices", values="floats", generator="generator"))
verb("multibeta", "set_phase", lambda m: dict(phase=2), dict(phase="phase"), mutates=True)


def _beta_b(m, n=2):
    return torch.full((n,), 0.5)


verb("multibeta.vae", "sigma", lambda m: dict(beta=0.5), dict(beta="beta"))
verb("multibeta.vae", "log_s2", lambda m: dict(beta=0.5), dict(beta="beta"))
# MultiBetaVAE.encode refuses NaN images too (the phase-2 loss, whose batch MultiBeta.loss has checked, reads the
# encoder through a private unchecked path)
verb("multibeta.vae", "encode", lambda m: dict(x=images(m), beta=_beta_b(m)), dict(x="image", beta=("beta", "paired")))
verb("multibeta.vae", "decode", lambda m: dict(z=torch.randn(2, 3), beta=_beta_b(m)), dict(z="codes", beta=("beta", "paired")))
verb("multibeta.vae", "sample_beta", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("multibeta.vae", "weights", lambda m: dict(beta=_beta_b(m)), dict(beta="beta"))
verb("multibeta.vae", "loss", lambda m: dict(batch=images(m), step=0, generator=gen(), beta=_beta_b(m)),
     dict(batch="image", step="step", generator="generator", beta=("?beta", "paired")))
verb("multibeta.denoiser", "grid_index", lambda m: dict(beta=0.5), dict(beta="beta"))
# predict() is the network call of every training and sampling step: kinds and shapes only (no host sync)
verb("multibeta.denoiser", "predict", lambda m: dict(z=torch.randn(2, 3), i=torch.tensor([1, 2])),
     dict(z="codes", i=("grid_i", "paired")), accepts=("z-nan", "z-inf", "z-empty", "i-negative", "i-too_large"))
verb("multibeta.denoiser", "step", lambda m: dict(z=torch.randn(2, 3), i=2, generator=gen()),
     dict(z="codes", i="index", generator="generator"))
verb("multibeta.denoiser", "denoise", lambda m: dict(z=torch.randn(2, 3), beta_from=0.5, beta_to=0.0, steps=None,
                                                     generator=gen()),
     dict(z="codes", beta_from="beta", beta_to="beta", steps="opt_count", generator="generator"))
verb("multibeta.denoiser", "sample", lambda m: dict(n=2, generator=gen(), beta_to=0.0),
     dict(n="count", generator="generator", beta_to="beta"))

# SAMI
def _post(m):
    with torch.no_grad():
        return m.posterior(images(m))


# posterior() reads noisy x_t inside the guidance and admits non-finite images (sami.py)
verb("sami", "posterior", lambda m: dict(x=images(m)), dict(x="image"), accepts=("x-nan", "x-inf"))
verb("sami", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("sami", "draw_latents", lambda m: dict(mu=_post(m)[0], logvar=_post(m)[1], num=2, generator=gen()),
     dict(mu="codes", logvar=("codes", "paired"), num="opt_count", generator="generator"))
verb("sami", "denoise", lambda m: dict(x_t=images(m), t=T(m)), dict(x_t="image", t="t"))
verb("sami", "guided_eps", lambda m: dict(x_t=images(m), t=T(m), z=_z(m), scale=1.0),
     dict(x_t="image", t="t", z=("codes", "paired"), scale="scalar"), accepts=("z-more_dims",))  # [S, B, d] draws
verb("sami", "lambda_weights", lambda m: dict(t=T(m)), dict(t="t"), accepts=("t-batch",))  # any B
verb("sami", "sample_timesteps", lambda m: dict(n=2, generator=gen()), dict(n="count", generator="generator"))
verb("sami", "kl_weight_at", lambda m: dict(step=3), dict(step="step"))
verb("sami", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("sami", "generate", lambda m: dict(z=_z(m), num_steps=1, generator=gen(), sampler="ddim"),
     dict(z="codes", num_steps="opt_count", generator="generator", sampler="?choice"), accepts=("z-more_dims",))
verb("sami", "sample_unconditional", lambda m: dict(n=2, generator=gen(), num_steps=1, sampler="ddim"),
     dict(n="count", generator="generator", num_steps="opt_count", sampler="?choice"))
verb("sami", "sample", lambda m: dict(n=2, generator=gen(), num_steps=1, sampler="ddim"),
     dict(n="count", generator="generator", num_steps="opt_count", sampler="?choice"))
verb("sami", "conditional_sample", lambda m: dict(x0=images(m), num_samples=1, generator=gen(), num_steps=1),
     dict(x0="image", num_samples="count", generator="generator"))
verb("sami", "reconstruct", lambda m: dict(x=images(m), generator=gen(), num_steps=1), dict(x="image", generator="generator"))

# DyGA
def _feats(m, n=8):
    return torch.randn(n, 2, 4, generator=gen(3))


verb("dyga", "normalise", lambda m: dict(c=_feats(m)), dict(c="codes"))
verb("dyga", "fit", lambda m: dict(features=_feats(m, 16), epoch=0), dict(features="codes", epoch="epoch"))  # a refit
verb("dyga", "assign", lambda m: dict(c=_feats(m)), dict(c="codes"))
verb("dyga", "forward", lambda m: dict(c=_feats(m), generator=gen()), dict(c="codes", generator="generator"))

# ParamReL (its verbs were hardened before this sweep: the sweep checks that they stay so)
def _pr_images(m, n=2, seed=1):
    return torch.rand((n, 1, 8, 8), generator=gen(seed)) * 2 - 1


PR_STEPS = dict(num_steps="opt_count")
verb("paramrel", "loss", lambda m: dict(batch=_pr_images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"), names={"batch": ["data"]},
     accepts=("batch-int",))  # integer class maps are discrete data; the flow names a complex batch "data"
verb("paramrel", "encode", lambda m: dict(x=_pr_images(m)), dict(x="image"), accepts=("x-int",))
verb("paramrel", "sample", lambda m: dict(n=2, generator=gen(), num_steps=1),
     dict(n="count", generator="generator", **PR_STEPS))
verb("paramrel", "reconstruct", lambda m: dict(x=_pr_images(m), num_steps=1), dict(x="image", **PR_STEPS),
     accepts=("x-int",))
verb("paramrel", "time_varying", lambda m: dict(x=_pr_images(m), times=[0.5], num_steps=1),
     dict(x="image", times="floats", **PR_STEPS), accepts=("x-int",))
verb("paramrel", "interpolate", lambda m: dict(x_a=_pr_images(m), x_b=_pr_images(m, seed=2), num=3, num_steps=1),
     dict(x_a="image", x_b=("image", "paired"), num="count", **PR_STEPS), accepts=("x_a-int", "x_b-int"))
verb("paramrel", "traverse", lambda m: dict(x=_pr_images(m, 1), dims=[0], values=[-1.0, 1.0], num_steps=1),
     dict(x="image", dims="?indices", values="?floats", **PR_STEPS),
     accepts=("x-int", "values-nested"))  # None: every dim / the default values; values are flattened


def _bad_values(kind):
    """The bad values of ``kind`` (a kind or a tuple of kinds); a kind written "?image" is optional: None is
    its documented default, not a bad value."""
    out = []
    for k in (kind,) if isinstance(kind, str) else kind:
        optional = k.startswith("?")
        out += [b for b in BAD[k.lstrip("?")] if not (optional and b[0] == "none")]
    return out


def cases():
    """One case per verb with valid arguments, and one per (verb, argument) that runs all its bad values."""
    out = []
    for mname, vname, args, kinds, names, mutates, accepts in SURFACE:
        out.append(pytest.param(mname, vname, args, None, [], names, mutates, id=f"{mname}.{vname}-valid"))
        for arg, kind in kinds.items():
            bad = [b for b in _bad_values(kind) if f"{arg}-{b[0]}" not in accepts]
            out.append(pytest.param(mname, vname, args, arg, bad, names, mutates, id=f"{mname}.{vname}-{arg}"))
    return out


def _finite(out):
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, dict):
        return all(_finite(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return all(_finite(v) for v in out)
    return True


def _verdict(call, kw, arg, bad_value, expect, names):
    """None when ``call`` with ``arg`` = ``bad_value`` passes the sweep, else what went wrong."""
    kw = {**kw, arg: bad_value}
    try:
        out = call(**kw)
    except (ValueError, TypeError) as err:
        wanted = [arg] + list(names.get(arg, ()))
        if not any(re.search(rf"\b{re.escape(w)}\b", str(err)) for w in wanted):
            return f"{type(err).__name__} does not name {wanted}: {err}"
        return None
    except Exception as err:  # noqa: BLE001 - any other exception is the failure the sweep looks for
        return f"{type(err).__name__}: {err}"
    if expect != EITHER:
        return "accepted silently"
    return None if _finite(out) else "accepted, but the output is not finite"


@pytest.mark.parametrize("mname, vname, args, arg, bad, names, mutates", cases())
def test_method_input_sweep(mname, vname, args, arg, bad, names, mutates):
    base, _, part = mname.partition(".")
    get = (lambda: getattr(fresh(base), part) if part else fresh(base)) if mutates else \
        (lambda: getattr(model(base), part) if part else model(base))
    m = get()
    if arg is None:
        out = getattr(m, vname)(**args(m))
        assert _finite(out), f"{vname} with valid arguments gave non-finite output"
        return
    problems = []
    for label, fn, expect in bad:
        m = get()
        kw = args(m)
        why = _verdict(getattr(m, vname), kw, arg, fn(kw[arg]), expect, names)
        if why is not None:
            problems.append(f"{arg} = <{label}>: {why}")
    assert not problems, "\n".join(problems)


# -- the analyses (diffrep.analysis): one case per (function, argument), on the tiny SAMI / multi-beta VAE -----
def _an(module, name):
    import importlib

    return getattr(importlib.import_module(f"diffrep.analysis.{module}"), name)


def _codes_factors():
    g = gen(2)
    return torch.randn(12, 3, generator=g), torch.randint(0, 3, (12, 2), generator=g)


ANALYSES = []


def analysis(fn, args, kinds, names=None, accepts=()):
    """``fn()`` the analysis, ``args()`` its valid keyword arguments, the rest as :func:`verb`."""
    ANALYSES.append((fn, args, kinds, names or {}, set(accepts)))


SAMI_M = dict(model="module")
BAD["module"] = [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("int", lambda v: 3, RAISE)]
BAD["probability"] = [("none", lambda v: None, RAISE), ("str", lambda v: "x", RAISE), ("nan", lambda v: NAN, RAISE),
                      ("negative", lambda v: -0.5, RAISE), ("above_one", lambda v: 1.5, RAISE)]
BAD["timesteps"] = [("str", lambda v: "ab", RAISE), ("empty", lambda v: [], RAISE), ("negative", lambda v: [-1], RAISE),
                    ("too_large", lambda v: [10**6], RAISE), ("float", lambda v: [0.5], RAISE)]
BAD["seed"] = [("none", lambda v: None, RAISE), ("str", lambda v: "0", RAISE), ("float", lambda v: 0.5, RAISE),
               ("negative", lambda v: -1, RAISE)]

analysis(lambda: _an("encoding", "encode_batched"), lambda: dict(model=model("sami"), images=images(model("sami"), 3),
                                                                 batch_size=2),
         dict(model="module", images="image", batch_size="count"))
analysis(lambda: _an("encoding", "model_images"), lambda: dict(model=model("sami"), x=images(model("sami"))),
         dict(model="module", x="image"), names={"x": ["images"]})
analysis(lambda: _an("guidance", "guidance_magnitude"),
         lambda: dict(model=model("sami"), image=images(model("sami"), 1), num_steps=1, seed=0),
         dict(model="module", image="image", num_steps="opt_count", seed="?seed"), accepts=("image-5d",))
analysis(lambda: _an("posterior_geometry", "posterior_variance_spectrum"),
         lambda: dict(model=model("sami"), image=images(model("sami"), 1), timesteps=[5], num_noise=1, seed=0),
         dict(model="module", image="image", timesteps="timesteps", num_noise="count", seed="?seed"),
         accepts=("image-5d",))
analysis(lambda: _an("posterior_geometry", "perturb_low_variance_axes"),
         lambda: dict(model=model("sami"), image=images(model("sami"), 1), alphas=[-1.0, 1.0], num_axes=1, seed=0,
                      num_steps=1),
         dict(model="module", image="image", alphas="floats", num_axes="count", seed="seed", num_steps="opt_count"),
         accepts=("image-5d",))
analysis(lambda: _an("posterior_geometry", "global_axes"),
         lambda: dict(model=model("sami"), images=images(model("sami"), 3), t=5, num_noise=1, seed=0, batch_size=2),
         dict(model="module", images="image", num_noise="count", seed="?seed", batch_size="count"))
analysis(lambda: _an("representation", "latent_straightness"),
         lambda: dict(model=model("sami"), videos=images(model("sami"), 6).reshape(2, 3, 1, 8, 8), batch_size=4),
         dict(model="module", batch_size="count"))
analysis(lambda: _an("sami_validation", "eps_mse_by_band"),
         lambda: dict(model=model("sami"), images=images(model("sami"), 2), num_bands=2, seed=0),
         dict(model="module", images="image", num_bands="count", seed="seed"))
analysis(lambda: _an("sami_validation", "band_edges"), lambda: dict(T=20, num_bands=4),
         dict(T="count", num_bands="count"))
analysis(lambda: _an("variability", "variability_reduction"),
         lambda: dict(model=model("sami"), guides=images(model("sami"), 1), num_samples=2, num_steps=1, seed=0),
         dict(model="module", guides="image", num_samples="count", num_steps="opt_count", seed="?seed"),
         accepts=("num_samples-count",))
analysis(lambda: _an("variability", "variability"), lambda: dict(samples=torch.randn(4, 3)), dict(samples="codes"),
         accepts=("samples-int", "samples-width"))  # integer samples are counted as numbers; any D
analysis(lambda: _an("multibeta", "information_curve"),
         lambda: dict(vae=model("multibeta").vae, x=images(model("multibeta").vae, 2), betas=[0.0, 0.5], batch_size=2),
         dict(vae="module", x="image", betas="floats", batch_size="count"))
analysis(lambda: _an("multibeta", "nearest_distance"),
         lambda: dict(images=torch.rand(2, 1, 4, 4), reference=torch.rand(3, 1, 4, 4), chunk=2),
         dict(images="image", reference="image", chunk="count"),
         accepts=("images-size", "reference-size", "images-int", "reference-int"))  # any image shape; integer pixels
analysis(lambda: _an("multibeta", "spearman"), lambda: dict(a=[1.0, 2.0, 3.0], b=[3.0, 1.0, 2.0]),
         dict(a="floats", b="floats"))
analysis(lambda: _an("traversal", "latent_factor_scores"),
         lambda: dict(codes=_codes_factors()[0], factors=_codes_factors()[1], num_bins=4),
         dict(codes=("codes", "paired"), num_bins="count"), accepts=("codes-int", "codes-width"))
analysis(lambda: _an("traversal", "traversal_values"), lambda: dict(codes=torch.randn(10, 3), num=3, q=0.1),
         dict(codes="codes", num="count", q="probability"), accepts=("codes-int", "codes-width"))
analysis(lambda: _an("traversal", "image_centroids"), lambda: dict(images=images(model("sami"), 2)),
         dict(images="image"), accepts=("images-channels", "images-size", "images-int"))
analysis(lambda: _an("traversal", "order_latents"), lambda: dict(best_score=[0.5, 0.2], spread=[1.0, 2.0]),
         dict(best_score="floats"))
analysis(lambda: _an("traversal", "row_label"), lambda: dict(d=0, factor="x", score=0.5), dict(score="scalar"))
analysis(lambda: _an("disks_probes", "disk_centres"), lambda: dict(images=images(model("sami"), 2), foreground=0.5),
         dict(images="image", foreground="scalar"), accepts=("images-size", "images-int"))


def analysis_cases():
    out = []
    for fn, args, kinds, names, accepts in ANALYSES:
        fname = f"{fn().__module__.rsplit('.', 1)[-1]}.{fn().__name__}"
        out.append(pytest.param(fn, args, None, [], names, id=f"{fname}-valid"))
        for arg, kind in kinds.items():
            bad = [b for b in _bad_values(kind) if f"{arg}-{b[0]}" not in accepts]
            out.append(pytest.param(fn, args, arg, bad, names, id=f"{fname}-{arg}"))
    return out


@pytest.mark.parametrize("fn, args, arg, bad, names", analysis_cases())
def test_analysis_input_sweep(fn, args, arg, bad, names):
    f = fn()
    if arg is None:
        assert _finite(f(**args())), f"{f.__name__} with valid arguments gave non-finite output"
        return
    problems = []
    for label, make, expect in bad:
        kw = args()
        why = _verdict(f, kw, arg, make(kw[arg]), expect, names)
        if why is not None:
            problems.append(f"{arg} = <{label}>: {why}")
    assert not problems, "\n".join(problems)
