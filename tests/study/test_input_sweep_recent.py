"""Input sweep of the public callables added or moved on 2026-12-06/07 that the area sweeps
(``test_input_sweep_*.py``) do not reach (docs/architecture.md#inputs): the random state of a run
(``train.rng``), the trainer's periodic evaluation, the EncDiff LDM spacing, ``resolve_weights`` (the verbs'
``--weights`` and a study's ``eval.weights``), the study runner and report, the building blocks of the VAE
family (total correlation, DIP, FactorVAE), the multi-beta grid, the InfoDiffusion priors and weights, the
FID image sources, and a few small helpers. One valid call per callable, then one argument at a time
replaced by a bad value (the engine of ``tests/bad_inputs.py``): a bad call passes when it raises
ValueError/TypeError (StudyError is a ValueError) whose message names the argument.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bad_inputs import Case, sweep_tests
from helpers import TwoOptimiserModel

NAN, INF = float("nan"), float("inf")
MISSING = "/nonexistent/diffrep-sweep-recent"
# the cases are built at collection time (their bad values are listed then): one folder for the saved models
# and study folders they read, removed when the session ends
TMP = Path(tempfile.mkdtemp(prefix="diffrep-sweep-recent-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def _gen():
    return torch.Generator().manual_seed(0)


def _randn(*shape):
    return torch.randn(*shape, generator=_gen())


def _mod(name):
    return importlib.import_module(name)


CASES: list[Case] = []


def case(name, make, **kw):
    CASES.append(Case(name, make, **kw))


NOT_GEN = [("str", "g"), ("int", 3)]

# -- train.rng ----------------------------------------------------------------------------------------
case("rng.restore_rng_state", lambda: (_mod("diffrep.train.rng").restore_rng_state,
                                      dict(state=_mod("diffrep.train.rng").capture_rng_state())),
     extra={"state": [("dict", {}), ("no_torch", {"numpy": {}, "python": {}}), ("list", [1])]})

# -- train.evaluation, loggers --------------------------------------------------------------------------
case("PeriodicEvaluation", lambda: (_mod("diffrep.train.evaluation").PeriodicEvaluation,
                                   dict(every=2, metrics={"m": lambda model: {"a": 1.0}}, use_ema=True, final=True)),
     extra={"every": [("float", 2.0)], "metrics": [("list", [lambda m: {}]), ("empty", {}),
                                                   ("not_callable", {"m": 3})]},
     names={"metrics": ["metric"]})


def _toy_dataset():
    from diffrep.data.pooled import Pooled

    return Pooled(_mod("diffrep.data").load("dsprites"), 4)


case("metric_preset", lambda: (_mod("diffrep.train.evaluation").metric_preset,
                               dict(name="fast", dataset=_toy_dataset(),
                                    config=_mod("diffrep.train").TrainConfig(eval_num_samples=6))),
     extra={"name": [("list", ["fast"])], "dataset": [("list", [1, 2])]},
     names={"name": ["preset"], "config": ["TrainConfig"]})
def _registering(module, fn_name, table):
    """``module.fn_name`` called as it is, its registry (``module.table``) restored afterwards: the names the
    sweep registers ("sweep-...", "bogus") must not reach the other tests (a preset named bogus was then known)."""
    def call(**kw):
        registry = getattr(_mod(module), table)
        before = dict(registry)
        try:
            return getattr(_mod(module), fn_name)(**kw)
        finally:
            registry.clear()
            registry.update(before)

    return call


case("register_metric_preset", lambda: (_registering("diffrep.train.evaluation", "register_metric_preset",
                                                     "METRIC_PRESETS"),
                                        dict(name="sweep-preset", factory=lambda d, c: (lambda m: {}))),
     accepted=("name:unknown",), names={"name": ["preset"]})
case("check_logger_packages", lambda: (_mod("diffrep.train.loggers").check_logger_packages,
                                       dict(tensorboard=False, wandb=False)))

# -- EncDiff: the LDM DDIM spacing ---------------------------------------------------------------------
case("ldm_ddim_pairs", lambda: (_mod("diffrep.methods.encdiff_config").ldm_ddim_pairs,
                                dict(num_timesteps=1000, num_steps=30)),
     extra={"num_steps": [("too_many", 1001), ("reaches_T", 1000)]})


# -- nn.pretrained.resolve_weights ---------------------------------------------------------------------
def _model_dir():
    from diffrep.nn import UNet

    from helpers import tiny_unet

    d = TMP / "model"
    if not (d / "config.json").is_file():
        UNet(tiny_unet()).save_pretrained(d)
    return d


case("resolve_weights", lambda: (_mod("diffrep.nn.pretrained").resolve_weights,
                                 dict(model_dir=_model_dir(), weights="model", verb="diffrep", flag="--weights")),
     extra={"model_dir": [("missing", MISSING), ("file", str(Path(__file__)))],
            "weights": [("ema_absent", "ema"), ("list", ["model"])]},
     errors=(FileNotFoundError,), names={"weights": ["--weights"]},
     accepted=("verb:unknown", "flag:unknown"))  # the words messages use for the command and the setting


# -- study: runner and report ----------------------------------------------------------------------------
def _study(n_cells=1):
    from diffrep.study import parse_study

    from study_fake import RECIPE

    seeds = list(range(n_cells))
    return parse_study({"study": "sweep", "seeds": seeds, "steps": 1, "methods": {"ae": {"recipe": RECIPE}},
                        "eval": {"metrics": []}})


def _quiet(_msg):
    pass


def _ran_study():
    from diffrep.study import run_study

    out = TMP / "study"
    if not (out / "study.json").is_file():
        run_study(_study(), out, log=_quiet)
    return out


case("cell_state", lambda: (_mod("diffrep.study.runner").cell_state, dict(cell=_study().cells[0], out=TMP / "s0")),
     extra={"cell": [("study", _study)], "out": [("int", 3)]}, accepted=("out:str",))  # a relative folder
case("check_surface", lambda: (_mod("diffrep.study.runner").check_surface,
                               dict(model=_mod("study_fake").StudyTinyAE(_mod("study_fake").StudyTinyAEConfig()),
                                    cell=_study().cells[0])),
     extra={"model": [("module", torch.nn.Linear(2, 2))]},
     names={"model": ["lacks the study surface"]})  # "method ae (...): Linear lacks the study surface (...)"
case("run_cell", lambda: (_mod("diffrep.study.runner").run_cell,
                          dict(cell=_study().cells[0], out=TMP / "cells", log=_quiet)),
     extra={"out": [("int", 3)], "log": [("not_callable", 3)]},
     skip=("log:None", "out:str"))  # None: print to stderr; a relative folder would be written in the cwd
# rank 1 of 2 of a one-cell study: no cell of its own, so the valid call trains nothing
case("run_study", lambda: (_mod("diffrep.study.runner").run_study,
                           dict(study=_study(), out=TMP / "runs", rank=1, world=2, update=False, redo_changed=False,
                                keep_going=False, log=_quiet)),
     extra={"out": [("int", 3)], "log": [("not_callable", 3)]},
     skip=("log:None", "out:str", "rank:zero"),  # rank 0 is valid (it would train the cell)
     names={"rank": ["--rank"], "world": ["--world"]})
case("report.collect", lambda: (_mod("diffrep.study.report").collect, dict(folder=_ran_study())),
     extra={"folder": [("missing", MISSING), ("int", 3)]}, names={"folder": ["study folder", MISSING]})
case("report.write_report", lambda: (_mod("diffrep.study.report").write_report,
                                     dict(folder=_ran_study(), out=TMP / "report", metrics=None, plots=False,
                                          digits=3)),
     extra={"folder": [("missing", MISSING), ("int", 3)], "out": [("int", 3)], "metrics": [("str", "mig"),
                                                                                           ("int", 3)]},
     skip=("metrics:None", "out:None", "out:str"), accepted=("digits:zero",),
     names={"folder": ["study folder", MISSING], "metrics": ["--metrics"]})
_ROW = dict(method="a", dataset="d", setting="s", params={}, seed=0, values={"mig": 0.5})
case("report.default_metrics", lambda: (_mod("diffrep.study.report").default_metrics, dict(rows=[_ROW])),
     extra={"rows": [("rows_of_str", ["x"]), ("no_values", [{"method": "a"}])]})
case("report.format_mean_std", lambda: (_mod("diffrep.study.report").format_mean_std,
                                        dict(mean=0.5, std=0.1, n=2, n_seeds=2, digits=3)),
     accepted=("mean:nan", "std:nan", "std:inf", "mean:inf", "mean:negative", "n:zero", "digits:zero"),
     skip=("std:negative",))  # a std of NaN or inf prints the mean alone, as a mean of NaN prints "-"

# The loss building blocks run inside every training step: NaN/inf in gives NaN/inf out (the trainer refuses a
# non-finite loss), as in torch's own losses; a finiteness check here would cost a host sync per step.
_PROPAGATES = tuple(f"{a}:{k}" for a in ("z", "mu", "logvar", "x", "logits", "logits_real", "logits_permuted")
                    for k in ("nan", "inf"))

# -- VAE family building blocks ---------------------------------------------------------------------------
_TC = "diffrep.methods.vae.total_correlation"
case("gaussian_log_density", lambda: (_mod(_TC).gaussian_log_density,
                                      dict(z=_randn(4, 3), mu=_randn(4, 3), logvar=_randn(4, 3) * 0.1)),
     skip=("z:ndim+1", "mu:ndim+1", "logvar:ndim+1", "z:ndim-1", "mu:ndim-1", "logvar:ndim-1"),  # broadcasts
     accepted=_PROPAGATES)
case("mss_log_weights", lambda: (_mod(_TC).mss_log_weights,
                                 dict(batch_size=4, dataset_size=10, dtype=torch.float32, device="cpu")),
     extra={"dtype": [("int", torch.int64), ("str", "float")], "device": [("bad", "tpu")]},
     skip=("device:None",))  # device None: the default device
case("total_correlation", lambda: (_mod(_TC).total_correlation,
                                   dict(z=_randn(4, 3), mu=_randn(4, 3), logvar=_randn(4, 3) * 0.1, estimator="mss",
                                        dataset_size=10)), accepted=_PROPAGATES)
_DIP = "diffrep.methods.vae.dip"
case("default_lambda_d", lambda: (_mod(_DIP).default_lambda_d, dict(kind="i", lambda_od=10.0)))
case("dip_covariance", lambda: (_mod(_DIP).dip_covariance, dict(mu=_randn(4, 3), logvar=_randn(4, 3), kind="ii")),
     accepted=_PROPAGATES)
case("dip_regulariser", lambda: (_mod(_DIP).dip_regulariser,
                                 dict(mu=_randn(4, 3), logvar=_randn(4, 3), kind="i", lambda_od=10.0, lambda_d=1.0)),
     accepted=("lambda_d:None",) + _PROPAGATES)  # None: the paper's default for kind
_FV = "diffrep.methods.vae.factor_vae"
case("permute_dims", lambda: (_mod(_FV).permute_dims, dict(z=_randn(4, 3), generator=_gen())),
     extra={"generator": NOT_GEN},  # a permutation of any values, any batch (an empty one included)
     accepted=("generator:None", "z:int_dtype", "z:complex", "z:empty", "z:batch-1") + _PROPAGATES)
case("factor_tc_estimate", lambda: (_mod(_FV).factor_tc_estimate, dict(logits=_randn(4, 2))),
     accepted=("logits:batch-1",) + _PROPAGATES)
case("discriminator_loss", lambda: (_mod(_FV).discriminator_loss,
                                    dict(logits_real=_randn(4, 2), logits_permuted=_randn(4, 2))),
     accepted=("logits_real:batch-1", "logits_permuted:batch-1") + _PROPAGATES)  # two batches, each its own mean
case("discriminator_accuracy", lambda: (_mod(_FV).discriminator_accuracy,
                                        dict(logits_real=_randn(4, 2), logits_permuted=_randn(4, 2))),
     accepted=("logits_real:batch-1", "logits_permuted:batch-1") + _PROPAGATES)
case("capacity_at", lambda: (_mod("diffrep.methods.vae.vae").capacity_at,
                             dict(step=3, capacity_max=25.0, capacity_steps=10)),
     accepted=("step:None", "step:zero"))  # None: the full capacity; step 0: none yet
case("draw_normal", lambda: (_mod("diffrep.methods.vae.core").draw_normal,
                             dict(shape=(2, 3), like=_randn(1), generator=_gen())),
     extra={"shape": [("negative", (-1, 3)), ("float", (2.5, 3))], "generator": NOT_GEN},
     # like gives the dtype and device only
     accepted=("generator:None",) + tuple(f"like:{k}" for k in ("nan", "inf", "ndim+1", "ndim-1", "empty")))

# -- multi-beta, InfoDiffusion, DisDiff ---------------------------------------------------------------------
case("beta_grid", lambda: (_mod("diffrep.methods.multibeta_vae").beta_grid,
                           dict(num_steps=4, beta_max=1.0, device="cpu", dtype=torch.float32)),
     extra={"dtype": [("int", torch.int64), ("str", "float")], "device": [("bad", "tpu")]},
     skip=("device:None",))
# a negative zeta or lam here (zeta = 0.5, lam = 1) makes the MMD weight negative: refused, naming both
case("info_weights", lambda: (_mod("diffrep.methods.infodiffusion").info_weights, dict(zeta=0.5, lam=1.0)))
case("sample_prior", lambda: (_mod("diffrep.methods.infodiffusion").sample_prior,
                              dict(kind="swiss_roll", n=3, dim=2, generator=_gen(), dtype=torch.float32, device="cpu",
                                   roll_noise=0.5)),
     extra={"generator": NOT_GEN, "dtype": [("int", torch.int64), ("str", "float")], "device": [("bad", "tpu")]},
     accepted=("generator:None", "device:None"), names={"kind": ["prior"]})
case("shift_coefficients", lambda: (_mod("diffrep.methods.disdiff").shift_coefficients,
                                    dict(schedule=_mod("diffrep.diffusion").NoiseSchedule(
                                        _mod("diffrep.diffusion").NoiseScheduleConfig(num_timesteps=10)))),
     extra={"schedule": [("config", _mod("diffrep.diffusion").NoiseScheduleConfig())]})
case("informative_beta", lambda: (_mod("diffrep.analysis.multibeta").informative_beta,
                                  dict(curve={"betas": [0.0, 0.5, 1.0], "explained": [1.0, 0.6, 0.2]},
                                       fraction=0.5)),
     extra={"curve": [("short", {"betas": [0.0, 0.5], "explained": [1.0]}),
                      ("str_values", {"betas": ["a"], "explained": ["b"]})]})

# -- FID image sources, small helpers ------------------------------------------------------------------------
_IS = "diffrep.metrics.image_sources"
case("tensor_source", lambda: (_mod(_IS).tensor_source,
                               dict(x=torch.rand(2, 3, 4, 4, generator=_gen()) * 2 - 1, num_samples=2, what="fake")),
     skip=("num_samples:None", "what"), accepted=("x:batch-1",), names={"x": ["fake"]})  # what: the set's name
case("resolve_source", lambda: (_mod(_IS).resolve_source,
                                dict(source=torch.rand(2, 3, 4, 4, generator=_gen()) * 2 - 1, num_samples=2, seed=0,
                                     what="fake")),
     skip=("num_samples:None", "what"), accepted=("source:batch-1",), names={"source": ["fake"]})
case("model_source", lambda: (_mod(_IS).model_source,
                              dict(model=lambda s, b: torch.zeros(b, 3, 4, 4), num_samples=2, seed=0, what="fake")),
     skip=("what",), names={"model": ["fake"]})
case("array_sha1", lambda: (_mod(_IS).array_sha1, dict(x=_randn(2, 3))),
     accepted=("x:nan", "x:inf", "x:int_dtype", "x:complex", "x:ndim+1", "x:ndim-1", "x:empty", "x:batch-1"))
case("module_dtype", lambda: (_mod("diffrep.nn.images").module_dtype, dict(module=torch.nn.Linear(2, 2))))
case("round_ste", lambda: (_mod("diffrep.nn.fsq").round_ste, dict(x=_randn(3))),
     accepted=("x:inf", "x:ndim+1", "x:ndim-1", "x:empty", "x:batch-1", "x:nan"))  # elementwise, as torch.round
case("bin_dtype", lambda: (_mod("diffrep.metrics.mig").bin_dtype, dict(codes=np.zeros((3, 2), np.float32))),
     accepted=("codes:None", "codes:str", "codes:nan", "codes:inf", "codes:int_dtype", "codes:ndim+1", "codes:ndim-1", "codes:empty",
               "codes:batch-1", "codes:float_dtype"))  # a dtype rule (float64 unless float32): mig checks the codes
case("register_recipe_dataset", lambda: (_registering("diffrep.recipes.runinfo", "register_recipe_dataset",
                                                      "RECIPE_DATASETS"),
                                         dict(name="sweep-dataset", factory=lambda pool: None)),
     accepted=("name:unknown",))
case("format_value", lambda: (_mod("diffrep.study.spec").format_value, dict(v=0.5)),
     accepted=("v:None", "v:str", "v:nan", "v:inf", "v:negative"))  # any value has a label


# -- model helpers made public on 2026-12-06/07: the multi-beta latent tables, FSQ, the U-Net's up path -----------
# The models of the method cases below are built once per session (functools.cache): a refused call changes nothing
# in them (each check precedes any state change) and the valid calls only refit what they refit anyway.
@functools.cache
def _multibeta():
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    return MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5,
                                      vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1}))


def _denoiser():
    m = _multibeta()
    m.denoiser.set_schedule(m.vae.sigma_grid().detach())
    return m.denoiser


case("MultiBetaVAE.log_sigma2", lambda: (_multibeta().vae.log_sigma2, dict(beta=0.5)),
     extra={"beta": [("above_B", 2.0), ("tensor_2d", torch.full((2, 2), 0.5))]})
case("MultiBetaVAE.sigma_latent", lambda: (_multibeta().vae.sigma_latent, dict(beta=torch.tensor([0.2, 0.4]))),
     # a number, or one beta per example of any batch (integer betas are betas)
     accepted=("beta:ndim-1", "beta:batch-1", "beta:empty", "beta:int_dtype"))
case("LatentDenoiser.grid_indices", lambda: (_denoiser().grid_indices, dict(beta=torch.tensor([0.2, 0.4]), n=2)),
     # a number (or a one-element tensor) for every example; n: beta's length; integer betas are betas
     accepted=("beta:ndim-1", "beta:batch-1", "beta:int_dtype"), names={"n": ["beta"]})
case("LatentDenoiser.set_schedule", lambda: (_multibeta().denoiser.set_schedule,
                                             dict(sigmas=torch.linspace(0.1, 1.0, 6))),
     extra={"sigmas": [("decreasing", torch.linspace(1.0, 0.1, 6)), ("zero", torch.zeros(6))]})
case("LatentDenoiser.weight_inv", lambda: (_denoiser().weight_inv, dict(i=torch.tensor([1, 3]))),
     extra={"i": [("zero", torch.tensor([0, 1])), ("past_N", torch.tensor([1, 6])), ("negative", torch.tensor([-1, 1]))]},
     accepted=("i:empty", "i:batch-1"))  # one index per example, any batch
case("LatentDenoiser.eq19_terms", lambda: (_denoiser().eq19_terms,
                                           dict(f_t=_randn(2, 3), f_prev=_randn(2, 3), i=torch.tensor([1, 3]),
                                                noise=_randn(2, 3))),
     accepted=tuple(f"{a}:{k}" for a in ("f_t", "f_prev", "noise") for k in ("nan", "inf")))  # a loss's inputs
case("FSQ.bound", lambda: (_mod("diffrep.nn.fsq").FSQ([5, 4]).bound, dict(z=_randn(3, 2))),
     # elementwise per channel (the last dimension), any leading shape
     accepted=("z:nan", "z:inf", "z:batch-1", "z:empty", "z:ndim+1", "z:ndim-1"))
case("FSQ.codebook", lambda: (_mod("diffrep.nn.fsq").FSQ([5, 4]).codebook, dict(dtype=torch.float32)),
     extra={"dtype": [("int", torch.int64), ("str", "float32")]})


def _unet_up():
    from diffrep.nn import UNet

    from helpers import tiny_unet

    u = UNet(tiny_unet())
    x = torch.randn(2, u.config.in_channels, u.config.image_size, u.config.image_size, generator=_gen())
    emb = u.time_embed(_mod("diffrep.nn.layers").timestep_embedding(torch.tensor([1, 2]), u.config.model_channels))
    hs, h = [], x
    for blk in u.input_blocks:
        h = blk(h, emb, None, None)
        hs.append(h)
    return u.forward_up, dict(h=h, hs=hs, emb=emb)


case("UNet.forward_up", _unet_up, perturb=("hs",), extra={"hs": [("short", []), ("tuple_of_str", ("a",))]})

# -- the trainer's presets built from a config, the run log's images ---------------------------------------------
case("PeriodicEvaluation.from_config", lambda: (_mod("diffrep.train.evaluation").PeriodicEvaluation.from_config,
                                                dict(config=_mod("diffrep.train").TrainConfig(
                                                    eval_every=2, eval_metrics=["fast"], eval_num_samples=6),
                                                    dataset=_toy_dataset())),
     extra={"dataset": [("list", [1, 2])]}, names={"config": ["TrainConfig"]})
case("fast_preset", lambda: (_mod("diffrep.train.evaluation").fast_preset,
                             dict(dataset=_toy_dataset(), config=_mod("diffrep.train").TrainConfig(eval_num_samples=6))),
     extra={"dataset": [("list", [1, 2])]}, names={"config": ["TrainConfig"]})
case("fid_preset", lambda: (_mod("diffrep.train.evaluation").fid_preset,
                            dict(dataset=_toy_dataset(), config=_mod("diffrep.train").TrainConfig(eval_num_samples=2))),
     extra={"dataset": [("list", [1])]}, names={"config": ["TrainConfig"]})


def _png():
    from PIL import Image

    p = TMP / "grid.png"
    if not p.is_file():
        Image.new("RGB", (4, 4)).save(p)
    return p


case("MetricLogger.log_image", lambda: (_mod("diffrep.train.loggers").MetricLogger(TMP / "log").log_image,
                                        dict(tag="samples", path=_png(), step=1)),
     extra={"path": [("missing", MISSING), ("int", 3)]}, errors=(FileNotFoundError,),
     accepted=("tag:unknown", "step:zero"), names={"path": [MISSING]})

# -- the command-line lists of the multibeta verbs -----------------------------------------------------------------
case("cli.multibeta.parse_floats", lambda: (_mod("diffrep.cli.multibeta").parse_floats,
                                            dict(text="0.1,0.3", flag="--betas")),
     extra={"text": [("nan", "0.1,nan"), ("empty", ",")]}, skip=("flag",), names={"text": ["--betas"]},
     accepted=("text:int",))  # str(text): 3 reads as "3"
case("cli.multibeta.parse_ints", lambda: (_mod("diffrep.cli.multibeta").parse_ints, dict(text="1,3", flag="--units")),
     extra={"text": [("float", "1.5"), ("empty", ",")]}, skip=("flag",), names={"text": ["--units"]},
     accepted=("text:int",))


# -- SAMI's guided chain: a scale that cannot be used is refused by name, not reported as a diverged chain -----------
def _sami_generate():
    from helpers import tiny_sami

    m = tiny_sami(dtype=torch.float32)
    return m.generate, dict(z=torch.zeros(2, 3), num_steps=1, generator=_gen(), sampler="ddim", guidance_scale=1.0)


case("SAMI.generate guidance_scale", _sami_generate, perturb=("guidance_scale",), skip=("guidance_scale:None",))


# -- the codes a saved model gives on its dataset (diffrep eval --model, diffrep encode, a study's metrics) -------
def _trained_run():
    return next(_ran_study().glob("ae/**/seed0"))


case("encode_dataset", lambda: (_mod("diffrep.recipes.encode").encode_dataset,
                                dict(model_dir=str(_trained_run() / "final"), dataset=None, num_train=4, num_test=2, seed=0,
                                     batch_size=4, weights="model", item_format="pm1", root=None, source="auto",
                                     device="cpu", pool=None)),
     perturb=("model_dir", "num_train", "num_test", "seed", "batch_size", "weights", "item_format", "device", "pool"),
     extra={"model_dir": [("missing", MISSING)], "pool": [("zero", 0), ("str", "2"), ("float", 2.5)]},
     skip=("pool:None",), errors=(FileNotFoundError,),
     names={"num_train": ["--num-train"], "num_test": ["--num-test"], "batch_size": ["--batch-size"],
            "seed": ["--seed"], "weights": ["--weights"], "device": ["--device"], "pool": ["--pool"],
            "item_format": ["format"], "model_dir": [MISSING, "x", "bogus"]})  # the path given
case("cli.aggregate.read_scores", lambda: (_mod("diffrep.cli.aggregate").read_scores,
                                           dict(path=_trained_run())),
     extra={"path": [("missing", MISSING), ("int", 3)]}, errors=(FileNotFoundError,),
     names={"path": [MISSING, "x"]})

# -- model configs and weights from elsewhere -------------------------------------------------------------------
case("infodiffusion_unet", lambda: (_mod("diffrep.methods.infodiffusion").infodiffusion_unet, dict(latent_dim=4)))
case("diffae_unet", lambda: (_mod("diffrep.methods.diffae").diffae_unet, dict(latent_dim=4)))


@functools.cache
def _disdiff():
    return _mod("diffrep.methods.disdiff").DisDiff(_mod("diffrep.methods.disdiff").DisDiffConfig(sample_steps=1))


def _disdiff_load():
    from diffrep.nn import UNet

    m = _disdiff()
    return m.load_pretrained_diffusion, dict(unet=UNet(m.config.unet), first_stage=None)


case("DisDiff.load_pretrained_diffusion", _disdiff_load,
     extra={"unet": [("other_module", torch.nn.Linear(2, 2))], "first_stage": [("int", 3)]},
     skip=("first_stage:None",))



# -- index-aligned codes scored against a dataset's targets (diffrep eval --codes F --dataset NAME) -----------------
class _SweepTargets:
    def __init__(self, n):
        self.y = np.arange(n)[:, None] % 3

    def __len__(self):
        return len(self.y)

    def targets(self, indices):
        return self.y[np.asarray(indices)]


case("align_to_dataset", lambda: (_mod("diffrep.metrics.suite").align_to_dataset,
                                  dict(arrays={"codes": np.zeros((3, 2)), "indices": np.array([0, 4, 5])},
                                       dataset=_SweepTargets(6), name="toy")),
     extra={"arrays": [("no_codes", {"z": np.zeros((3, 2))}), ("bad_indices", {"codes": np.zeros((3, 2)),
                                                                               "indices": np.array([0, 4, 6])})],
            "dataset": [("list", [1, 2])]},
     skip=("name",), names={"arrays": ["--codes"], "dataset": ["--dataset"]})  # name: the dataset's label


# -- EncDiff's anchor data (DyGA Alg. 1-2): the dataset read, counts --------------------------------------------------
@functools.cache
def _encdiff():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.dyga import DyGAConfig
    from diffrep.methods.encdiff import EncDiff, EncDiffConfig
    from diffrep.methods.encdiff_nets import SmallExtractorConfig
    from diffrep.nn import UNetConfig

    un = UNetConfig(image_size=16, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(8,), num_heads=1, num_groups=4, context_dim=4)
    sx = SmallExtractorConfig(image_size=16, num_units=2, token_dim=4, channels=(4, 8), hidden=8, mlp_hidden=(4,))
    torch.manual_seed(0)
    return EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=None, conditioning="dyga", sample_steps=2,
                                 dyga=DyGAConfig(num_units=2, token_dim=4, n_components=2, min_mass=2),
                                 schedule=NoiseScheduleConfig(kind="linear", num_timesteps=10)))


def _anchor_images():
    return torch.utils.data.TensorDataset(torch.rand(16, 3, 16, 16, generator=_gen()) * 2 - 1)


_NOT_DATASET = [("empty", torch.utils.data.TensorDataset(torch.zeros(0, 3, 16, 16))), ("int", 3)]
case("EncDiff.refresh_anchors", lambda: (_encdiff().refresh_anchors,
                                         dict(dataset=_anchor_images(), epoch=0, batch_size=8, limit=16)),
     extra={"dataset": _NOT_DATASET, "limit": [("one", 1)]}, skip=("limit:None",),
     names={"limit": ["2 points"]})  # "anchor selection needs at least 2 points"
case("EncDiff.features", lambda: (_encdiff().features, dict(dataset=_anchor_images(), batch_size=8, aligned=False,
                                                             limit=4)),
     extra={"dataset": _NOT_DATASET}, skip=("limit:None",))
case("EncDiff.attach_anchor_data", lambda: (_encdiff().attach_anchor_data,
                                            dict(dataset=_anchor_images(), steps_per_epoch=2, batch_size=8)),
     extra={"dataset": [("int", 3)]})


# -- DisDiff's DyGA anchors from images; the multi-beta recipe's phase configs ----------------------------------------
@functools.cache
def _disdiff_with_dyga():
    from diffrep.methods.disdiff import DisDiff, DisDiffConfig
    from diffrep.methods.dyga import DyGAConfig

    torch.manual_seed(0)
    return DisDiff(DisDiffConfig(sample_steps=1, dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, min_mass=2)))


def _disdiff_dyga():
    return _disdiff_with_dyga().refresh_anchors, dict(x=torch.rand(8, 3, 16, 16, generator=_gen()) * 2 - 1, epoch=0)


case("DisDiff.refresh_anchors", _disdiff_dyga, extra={"x": [("list", [torch.zeros(3, 16, 16)])]},
     accepted=("x:batch-1",), names={"x": ["2 points"]})  # one image: "anchor selection needs at least 2 points"
case("MultiBetaRecipeConfig.train_for", lambda: (_mod("diffrep.recipes.multibeta").dsprites_cpu().train_for,
                                                 dict(phase=2)),
     extra={"phase": [("four", 4), ("str_digit", "1")]})


# -- network building blocks made public with the multi-beta, EncDiff, FactorVAE and DiffAE modules ------------------
_MBN = "diffrep.methods.multibeta_nets"
case("BetaEmbedding", lambda: (_mod(_MBN).BetaEmbedding, dict(dim=8, scale=1000.0, base=128)))
case("FiLM", lambda: (_mod(_MBN).FiLM, dict(emb_dim=8, channels=4)))
case("LatentMLP", lambda: (_mod(_MBN).LatentMLP, dict(latent_dim=3, hidden=8, depth=1, time_scale=1000.0)))
case("conv_channels", lambda: (_mod(_MBN).conv_channels, dict(image_size=32)), extra={"image_size": [("odd", 33)]})
case("FSQTokens", lambda: (_mod("diffrep.methods.encdiff_nets").FSQTokens, dict(token_dim=4, levels=(5, 4))),
     extra={"levels": [("one_level", (1, 4)), ("empty", ()), ("float", (5.5, 4))]})
case("FactorDiscriminator", lambda: (_mod("diffrep.methods.vae.factor_vae").FactorDiscriminator,
                                     dict(latent_dim=3, hidden=8, layers=2)))



def _choose_beta():
    import dataclasses

    rm = _mod("diffrep.recipes.multibeta")
    cfg = dataclasses.replace(rm.dsprites_cpu(), informative_images=4, beta_candidates=(0.5,))
    cfg.model.vae.num_steps = cfg.model.denoiser.num_steps = 4
    data = torch.utils.data.TensorDataset(torch.rand(4, 1, 32, 32, generator=_gen()) * 2 - 1)
    torch.manual_seed(0)
    return rm.choose_representation_beta, dict(cfg=cfg, model=rm.MultiBeta(cfg.model), dataset=data, device="cpu")


case("choose_representation_beta", _choose_beta,
     extra={"dataset": [("one_image", torch.utils.data.TensorDataset(torch.zeros(1, 1, 32, 32))), ("int", 3)],
            "device": [("bad", "tpu")]}, skip=("device:None",))

test_valid_call, test_bad_input = sweep_tests(CASES)


# unet_state_from_diffusers: its valid call needs a whole diffusers state dict (tests/nn/test_diffusers_unet.py
# writes one); here its two arguments, each of a kind it cannot read, and a state dict that lacks the weights
def _tiny_unet_config():
    from diffrep.nn import UNetConfig

    return UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), num_groups=4)


@pytest.mark.parametrize("sd, exc, words", [(None, TypeError, "sd must be a state dict"),
                                            ([("a", torch.zeros(1))], TypeError, "sd must be a state dict"),
                                            ({"x": 1}, TypeError, "sd must be a state dict"),
                                            ({3: torch.zeros(1)}, TypeError, "sd must be a state dict"),
                                            ({"x": torch.zeros(1)}, ValueError, "diffusers weights lack")],
                         ids=["None", "list", "not_tensors", "int_keys", "unknown_keys"])
def test_unet_state_from_diffusers_names_a_bad_state_dict(sd, exc, words):
    from diffrep.nn.diffusers_unet import unet_state_from_diffusers

    with pytest.raises(exc, match=words):
        unet_state_from_diffusers(sd, _tiny_unet_config())


@pytest.mark.parametrize("config", [None, {}, "unet"], ids=["None", "dict", "str"])
def test_unet_state_from_diffusers_names_a_bad_config(config):
    from diffrep.nn.diffusers_unet import unet_state_from_diffusers

    with pytest.raises(TypeError, match="config must be a UNetConfig"):
        unet_state_from_diffusers({}, config)


# subgrid_by_name: a valid call renders the Shapes3D sub-grid (seconds; tests/recipes/test_shapes3d_subgrid_rng.py
# reads it); every refusal comes before anything is rendered
@pytest.mark.parametrize("options, exc, words", [
    ("x", TypeError, "dataset_options must be a mapping"), ([("size", 16)], TypeError, "dataset_options must be a mapping"),
    (None, ValueError, "needs dataset_options.size"), ({}, ValueError, "needs dataset_options.size"),
    ({"bogus": 1}, ValueError, "unknown dataset_options"), ({"size": 12}, ValueError, "dataset_options.size must be"),
    ({"size": "16"}, ValueError, "dataset_options.size must be"), ({"size": True}, ValueError, "dataset_options.size")],
    ids=["str", "list", "None", "empty", "unknown", "size12", "size_str", "size_bool"])
def test_subgrid_by_name_names_bad_options(options, exc, words):
    from diffrep.recipes.runinfo import subgrid_by_name

    with pytest.raises(exc, match=words):
        subgrid_by_name(options)


# the second AdamW's settings a two-optimiser model returns (diffrep.train.optim): a value of a kind the checks
# could not compare (None, a str) raised a bare TypeError; NaN and inf passed


@pytest.mark.parametrize("key, value", [("lr", None), ("lr", "1e-4"), ("lr", NAN), ("lr", INF), ("lr", True),
                                        ("eps", None), ("eps", "1e-8"), ("eps", NAN), ("weight_decay", None),
                                        ("weight_decay", "0"), ("weight_decay", INF), ("betas", (0.5, None)),
                                        ("betas", ("a", 0.9)), ("betas", (NAN, 0.9))])
def test_bad_discriminator_optimizer_settings_are_named(tmp_path, key, value):
    from diffrep.train import Trainer, TrainConfig

    cfg = TrainConfig(steps=1, batch_size=2, device="cpu", log_every=1, ckpt_every=0, sample_every=0, eval_every=0)
    data = torch.utils.data.TensorDataset(torch.randn(4, 2, generator=_gen()))
    with pytest.raises(ValueError, match=rf"discriminator_optimizer_settings\(\): .*\b{key}\b"):
        Trainer(TwoOptimiserModel({key: value}), data, cfg, tmp_path / "run").train()
