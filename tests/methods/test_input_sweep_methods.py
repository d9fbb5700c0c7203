"""Input sweep of the method surface (docs/architecture.md#inputs): every public verb of every model, on a
tiny config, called once with valid arguments and then with one argument at a time replaced by a bad value.

A bad call passes when it raises ValueError/TypeError (ConfigError is a ValueError) whose message names the
argument, or, for a value the docs accept (a float16 image, cast to the model's dtype), when it returns a
finite result. It fails on any other exception (AttributeError, IndexError, torch's RuntimeError, an
assert), on an unnamed argument, and on a bad value silently accepted.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch

from helpers import tiny_sami, tiny_unet

NAN, INF = float("nan"), float("inf")


# -- tiny models -------------------------------------------------------------------------------
def _toy():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig

    return ToyDDPM(ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=1),
                                 schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=10), sample_steps=2))


def _multibeta():
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    m = MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5,
                                   vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1}))
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


def _cls(module, name, **fields):
    import importlib

    cls = getattr(importlib.import_module(f"diffrep.methods.{module}"), name)
    return lambda: cls(cls.config_class(**fields))


FACTORIES = {
    "toy": _toy,
    "diffae": _cls("diffae", "DiffAE", sample_steps=2),
    "infodiffusion": _cls("infodiffusion", "InfoDiffusion", sample_steps=2),
    "disdiff": _cls("disdiff", "DisDiff", sample_steps=2),
    "encdiff": _encdiff,
    "multibeta": _multibeta,
    "sami": lambda: tiny_sami(dtype=torch.float32),
    "vae": _cls("vae.vae", "VAE", image_size=32),
    "fsq": _cls("vae.fsq_ae", "FSQAE", image_size=32),
    "dyga": _cls("dyga", "DyGA", num_units=2, token_dim=4, n_components=2, min_mass=2),
}


@functools.lru_cache(maxsize=None)
def model(name):
    torch.manual_seed(0)
    return FACTORIES[name]().eval()


def fresh(name):
    model.cache_clear()
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
    v = v.clone()
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


def verb(model_name, name, args, kinds, names=None, mutates=False):
    SURFACE.append((model_name, name, args, kinds, names or {}, mutates))


# toy DDPM
verb("toy", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("toy", "sample", lambda m: dict(n=2, generator=gen(), num_steps=2, sampler="ddim"),
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
verb("diffae", "encode_stochastic", lambda m: dict(x=images(m), z_sem=_z(m), num_steps=2),
     dict(x="image", z_sem=("?codes", "paired"), **STEPS))
verb("diffae", "decode", lambda m: dict(z_sem=_z(m), x_T=images(m), num_steps=2, generator=gen()),
     dict(z_sem="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("diffae", "reconstruct", lambda m: dict(x=images(m), num_steps=2, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("diffae", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("diffae", "normalize_z", lambda m: dict(z=_z(_diffae(m))), dict(z="codes"))
verb("diffae", "denormalize_z", lambda m: dict(z=_z(_diffae(m))), dict(z="codes"))
verb("diffae", "fit_latent_stats", lambda m: dict(z_sem=_z(m)), dict(z_sem="codes"), mutates=True)
verb("diffae", "latent_loss", lambda m: dict(x0=images(_diffae(m)), generator=gen()), dict(x0="image", generator="generator"))
verb("diffae", "sample_latent", lambda m: dict(n=2 + 0 * bool(_diffae(m)), generator=gen(), num_steps=2),
     dict(n="count", generator="generator", **STEPS))
verb("diffae", "sample", lambda m: dict(n=2 + 0 * bool(_diffae(m)), generator=gen(), num_steps=2),
     dict(n="count", generator="generator", **STEPS), mutates=True)
verb("diffae", "interpolate", lambda m: dict(x_a=images(m), x_b=images(m, seed=2), alphas=[0.0, 0.5], num_steps=2),
     dict(x_a="image", x_b=("image", "paired"), alphas="floats", **STEPS))
verb("diffae", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), dims=[0, 1], num_steps=2),
     dict(x="image", source=("image", "paired"), dims="indices", **STEPS))
verb("diffae", "traverse", lambda m: dict(x=images(_diffae(m)), dim=0, values=[-1.0, 1.0], num_steps=2),
     dict(x="image", dim="index", values="floats", **STEPS))
verb("diffae", "fit_attribute", lambda m: dict(z_sem=_z(_diffae(m)), labels=torch.tensor([0, 1]), steps=2, lr=0.1,
                                               weight_decay=0.0),
     dict(z_sem="codes", labels=("labels", "paired"), steps="count", lr="scalar", weight_decay="scalar"))
verb("diffae", "manipulate", lambda m: dict(x=images(_diffae(m)), direction=torch.ones(m.config.latent_dim), scale=1.0,
                                            num_steps=2),
     dict(x="image", direction="vector", scale="scalar", **STEPS))

# InfoDiffusion
verb("infodiffusion", "posterior", lambda m: dict(x=images(m)), dict(x="image"))
verb("infodiffusion", "encode", lambda m: dict(x=images(m)), dict(x="image"))
verb("infodiffusion", "eps", lambda m: dict(x_t=images(m), t=T(m), z=_z(m)), dict(x_t="image", t="t", z=("codes", "paired")))
verb("infodiffusion", "mmd", lambda m: dict(z=_z(m), prior_samples=torch.randn(2, m.config.latent_dim)),
     dict(z="codes", prior_samples="codes"))
verb("infodiffusion", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("infodiffusion", "decode", lambda m: dict(z=_z(m), x_T=images(m), num_steps=2, generator=gen()),
     dict(z="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("infodiffusion", "encode_stochastic", lambda m: dict(x=images(m), z=_z(m), num_steps=2),
     dict(x="image", z=("?codes", "paired"), **STEPS))
verb("infodiffusion", "reconstruct", lambda m: dict(x=images(m), num_steps=2, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("infodiffusion", "sample", lambda m: dict(n=2, generator=gen(), num_steps=2),
     dict(n="count", generator="generator", **STEPS))
verb("infodiffusion", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), dims=[0], num_steps=2),
     dict(x="image", source=("image", "paired"), dims="indices", **STEPS))
verb("infodiffusion", "traverse", lambda m: dict(x=images(m), dim=0, values=[-1.0, 1.0], num_steps=2),
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
verb("disdiff", "fit_code_pca", lambda m: dict(x=images(m, 4)), dict(x="image"), mutates=True)
verb("disdiff", "align_units", lambda m: dict(units=_units(m), generator=gen()), dict(units="codes", generator="generator"))
verb("disdiff", "encode", lambda m: dict(x=images(_disdiff(m))), dict(x="image"))
verb("disdiff", "predict", lambda m: dict(x_t=images(m), t=T(m), units=_units(m)),
     dict(x_t="image", t="t", units=("?codes", "paired")))
verb("disdiff", "loss", lambda m: dict(batch=images(m), step=0, generator=gen()),
     dict(batch="image", step="step", generator="generator"))
verb("disdiff", "eps_with_units", lambda m: dict(x_t=images(m), t=T(m), units=_units(m)),
     dict(x_t="image", t="t", units=("codes", "paired")))
verb("disdiff", "decode", lambda m: dict(units=_units(m), x_T=images(m), num_steps=2, generator=gen()),
     dict(units="codes", x_T=("?image", "paired"), generator="generator", **STEPS))
verb("disdiff", "encode_stochastic", lambda m: dict(x=images(m), units=_units(m), num_steps=2),
     dict(x="image", units=("?codes", "paired"), **STEPS))
verb("disdiff", "reconstruct", lambda m: dict(x=images(m), num_steps=2, generator=gen()),
     dict(x="image", generator="generator", **STEPS))
verb("disdiff", "sample", lambda m: dict(n=2, generator=gen(), num_steps=2),
     dict(n="count", generator="generator", **STEPS))
verb("disdiff", "swap", lambda m: dict(x=images(m), source=images(m, seed=2), unit=1, num_steps=2, x_T=images(m)),
     dict(x="image", source=("image", "paired"), unit="index", x_T=("?image", "paired"), **STEPS))
verb("disdiff", "traverse", lambda m: dict(x=images(_disdiff(m)), unit=0, values=[-1.0, 1.0], num_steps=2),
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

def _bad_values(kind):
    """The bad values of ``kind`` (a kind or a tuple of kinds); a kind written "?image" is optional: None is
    its documented default, not a bad value."""
    out = []
    for k in (kind,) if isinstance(kind, str) else kind:
        optional = k.startswith("?")
        out += [b for b in BAD[k.lstrip("?")] if not (optional and b[0] == "none")]
    return out


def cases():
    out = []
    for mname, vname, args, kinds, names, mutates in SURFACE:
        out.append(pytest.param(mname, vname, args, None, None, names, mutates, id=f"{mname}.{vname}-valid"))
        for arg, kind in kinds.items():
            for label, bad, expect in _bad_values(kind):
                out.append(pytest.param(mname, vname, args, arg, (bad, expect), names, mutates,
                                        id=f"{mname}.{vname}-{arg}-{label}"))
    return out


def _finite(out):
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, dict):
        return all(_finite(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return all(_finite(v) for v in out)
    return True


@pytest.mark.parametrize("mname, vname, args, arg, bad, names, mutates", cases())
def test_method_input_sweep(mname, vname, args, arg, bad, names, mutates):
    m = fresh(mname) if mutates else model(mname)
    kw = args(m)
    if arg is None:
        out = getattr(m, vname)(**kw)
        assert _finite(out), f"{vname} with valid arguments gave non-finite output"
        return
    fn, expect = bad
    kw[arg] = fn(kw[arg])
    try:
        out = getattr(m, vname)(**kw)
    except (ValueError, TypeError) as err:
        wanted = [arg] + list(names.get(arg, ()))
        assert any(re.search(rf"\b{re.escape(w)}\b", str(err)) for w in wanted), \
            f"{type(err).__name__} does not name {wanted}: {err}"
        return
    assert expect == EITHER, f"{arg} = bad value accepted silently"
    assert _finite(out), f"{arg}: accepted, but the output is not finite"
