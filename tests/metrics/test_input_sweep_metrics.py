"""Input sweep of diffrep.metrics (tests/bad_inputs.py): each public metric called once validly on tiny
data, then with one argument at a time replaced by a bad value. A bad value must give a ValueError or
TypeError naming the argument (never a torch/numpy-internal error or a silently wrong score); the
cases listed in ``accepted`` are documented conversions (e.g. a list of numbers for an array).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bad_inputs import Case, expand, run_case, sweep_tests, valid_call
from helpers import fid_weights_or_none

import diffrep.metrics as M
from diffrep.metrics import generation as G
from diffrep.metrics import fid_preprocess as P
from diffrep.metrics.results import Result, merge
from diffrep.metrics.dci import fit_factors
from diffrep.metrics.gbt import fit_predict
from diffrep.metrics.linear import fit_logistic
from diffrep.metrics.mig import discretised_mi
from diffrep.metrics.suite import compute, load_codes, sample_warnings


def _codes(n=40, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _factors(n=40, f=2, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (n, f), generator=g)


def _finite_scores(r):
    assert isinstance(r, Result)
    for k, v in r.scalar_items():
        assert math.isfinite(v), (k, v)


# integer codes are documented numeric codes (diffrep.ops.metrics._float converts them to float64)
INT_CODES = ("*:int_dtype",)


def _split_case(name, fn, **kw):
    c, f = _codes(60), _factors(60)
    base = dict(codes_train=c[:40], factors_train=f[:40], codes_test=c[40:], factors_test=f[40:], **kw)
    # n_jobs=-1 is "every core" (joblib's convention); integer codes are numbers (mig's case checks them)
    return Case(name, lambda: (fn, dict(base)), check=_finite_scores,
                skip=("codes_train:int_dtype", "codes_test:int_dtype", "n_jobs:negative"))


def _ds():
    from diffrep.data import ArrayGroundTruthData

    rng = np.random.default_rng(0)
    return ArrayGroundTruthData(rng.random((12, 1, 4, 4)).astype(np.float32), ["a", "b"], [4, 3])


def _rep(x):
    return torch.as_tensor(x).reshape(len(x), -1)[:, :4].float()


CASES = [
    Case("mig", lambda: (M.mig, dict(codes=_codes(), factors=_factors(), num_bins=5, mode="robust")),
         check=_finite_scores, accepted=INT_CODES),
    _split_case("dci", M.dci, max_bins=8, n_jobs=1),
    _split_case("sap", M.sap),
    _split_case("modularity_explicitness", M.modularity_explicitness, num_bins=5),
    Case("infomec", lambda: (M.infomec, dict(codes=_codes(), factors=_factors(), n_neighbors=3, seed=0,
                                             discrete_latents=False)), check=_finite_scores, accepted=INT_CODES,
         skip=("seed:None",)),  # seed=None: unseeded tie-breaking noise, as the reference
    Case("tad", lambda: (M.tad, dict(codes=_codes(), attributes=_factors(k=2), n_splits=2)), check=_finite_scores,
         accepted=INT_CODES),
    Case("latent_auroc", lambda: (M.latent_auroc, dict(codes=_codes(), attributes=_factors(k=2), n_splits=2)),
         check=_finite_scores, accepted=INT_CODES),
    _split_case("downstream_efficiency", M.downstream_efficiency, sizes=(5, 10), n_jobs=1),
    # one trajectory (T, d) / one weight vector (d,) are documented forms; any batch size is
    Case("straightness", lambda: (M.straightness, dict(trajectories=torch.randn(3, 4, 2), eps=0.0)),
         check=_finite_scores, accepted=INT_CODES + ("trajectories:ndim-1", "trajectories:batch-1")),
    Case("participation_ratio", lambda: (M.participation_ratio, dict(weights=torch.rand(4, 3) + 0.1)),
         check=_finite_scores, accepted=("weights:int_dtype", "weights:ndim-1", "weights:batch-1")),
    Case("lr_participation_ratio", lambda: (M.lr_participation_ratio, dict(codes=_codes(), attributes=_factors(k=2))),
         check=_finite_scores, accepted=INT_CODES),
    Case("factor_vae_score", lambda: (M.factor_vae_score, dict(
        dataset=_ds(), representation_fn=_rep, batch_size=4, num_train=4, num_eval=4, num_variance_estimate=8,
        threshold=0.05, seed=0, device="cpu")), check=_finite_scores, skip=("device:None",)),
    Case("beta_vae_score", lambda: (M.beta_vae_score, dict(
        dataset=_ds(), representation_fn=_rep, batch_size=4, num_train=6, num_eval=6, seed=0)), check=_finite_scores),
    Case("downstream_task_score", lambda: (M.downstream_task_score, dict(
        dataset=_ds(), representation_fn=_rep, sizes=(6,), num_test=6, batch_size=4, seed=0)), check=_finite_scores),
    Case("evaluate", lambda: (M.evaluate, dict(
        dataset=_ds(), representation_fn=_rep, metrics=("mig",), num_train=12, num_test=12, seed=0)),
         check=_finite_scores),
    # fit_on=None fits on units (the default); the fit sample may be of another size
    Case("pca1_units", lambda: (M.pca1_units, dict(units=torch.randn(6, 2, 3), fit_on=torch.randn(6, 2, 3))),
         skip=("fit_on:None",), accepted=("*:int_dtype", "units:batch-1", "fit_on:batch-1")),
    # the observations go to the caller's representation_fn; its returned codes are what is checked
    Case("pca1_representation", lambda: (M.pca1_representation, dict(
        representation_fn=lambda x: torch.as_tensor(x).reshape(len(x), -1)[:, :4].double(), num_units=2,
        fit_observations=np.random.default_rng(0).random((6, 4)))), perturb=("representation_fn", "num_units"),
         extra={"representation_fn": [("nan_codes", lambda x: torch.full((len(x), 4), float("nan"))),
                                      ("odd_width", lambda x: torch.zeros(len(x), 3)),
                                      ("str_codes", lambda x: np.array([["a"] * 4] * len(x))),
                                      ("units_mismatch", lambda x: torch.zeros(len(x), 3, 2))]}),
    Case("Result", lambda: (Result, dict(scores={"a": 1.0}, metric="m", variant="v")),
         accepted=("metric:unknown", "variant:unknown")),
    Case("merge", lambda: (merge, dict(results=[Result({"a": 1.0}, "m", "v")], metric="suite")),
         accepted=("metric:unknown",)),
    # generation metrics, features level
    Case("frechet_distance", lambda: (G.frechet_distance, dict(mu1=np.zeros(2), sigma1=np.eye(2), mu2=np.ones(2),
                                                               sigma2=np.eye(2))), accepted=INT_CODES),
    # integer features are numbers (converted to float64); the two sets may differ in size
    Case("feature_statistics", lambda: (G.feature_statistics, dict(feats=np.random.default_rng(0).random((5, 2)))),
         accepted=("feats:int_dtype", "feats:batch-1")),
    Case("frechet_distance_from_features", lambda: (G.frechet_distance_from_features, dict(
        feats_a=np.random.default_rng(0).random((5, 2)), feats_b=np.random.default_rng(1).random((5, 2)))),
         accepted=("*:int_dtype", "*:batch-1")),
    Case("fid_from_features", lambda: (G.fid_from_features, dict(
        real=np.random.default_rng(0).random((5, 2)), fake=np.random.default_rng(1).random((5, 2)),
        allow_singular=False)), accepted=("*:int_dtype", "*:batch-1")),
    # gamma=None is 1 / d and device=None the default device (documented); coef0 may be any finite number
    Case("kid_from_features", lambda: (G.kid_from_features, dict(
        real=torch.rand(6, 3, dtype=torch.float64), fake=torch.rand(6, 3, dtype=torch.float64), num_subsets=2,
        subset_size=3, degree=3, gamma=0.5, coef0=1.0, seed=0, device="cpu")),
         skip=("gamma:None", "device:None"), accepted=("*:int_dtype", "*:batch-1", "coef0:negative")),
    Case("prdc", lambda: (G.prdc, dict(real=torch.rand(6, 3), fake=torch.rand(6, 3), k=2, dc_k=2, strict=False,
                                      device="cpu")), skip=("dc_k:None", "device:None"),
         accepted=("*:int_dtype", "*:batch-1")),
    # generation metrics, image level: the user-extractor path (a documented callable extractor)
    # extractor=None is the Inception path (below); a str is a TorchScript path (FileNotFoundError naming it)
    Case("fid_extractor", lambda: (G.fid, dict(real=torch.rand(4, 1, 4, 4) * 2 - 1, fake=torch.rand(4, 1, 4, 4) * 2 - 1,
                                               extractor=lambda x: x.reshape(len(x), -1)[:, :2], num_samples=None,
                                               batch_size=2)),
         skip=("extractor:None", "num_samples:None"), errors=(FileNotFoundError,), names={"extractor": ("x",)},
         accepted=("*:int_dtype", "*:batch-1"),
         extra={"extractor": [("bad_output", lambda x: x.reshape(-1)), ("nan_output", lambda x: x[:, 0, 0] * np.nan)],
                "num_samples": [("int", 3)]}),
    Case("image_features", lambda: (G.image_features, dict(extractor=lambda x: x.reshape(len(x), -1),
                                                           make=lambda s, k: torch.rand(k, 1, 2, 2), num=3,
                                                           batch_size=2))),
    Case("to_uint8_values", lambda: (P.to_uint8_values, dict(images=torch.rand(2, 3, 4, 4) * 2 - 1)),
         accepted=("images:batch-1",)),
    Case("preprocess", lambda: (P.preprocess, dict(images=torch.rand(1, 3, 4, 4) * 2 - 1, protocol="clean", size=8))),
    Case("pil_bicubic_matrix", lambda: (P.pil_bicubic_matrix, dict(n_in=4, n_out=8))),
    Case("tf1_bilinear_matrix", lambda: (P.tf1_bilinear_matrix, dict(n_in=4, n_out=8))),
]



def _codes_file():
    path = Path(_CODES_DIR.name) / "codes.npz"
    if not path.exists():
        np.savez(path, codes=_codes(60).numpy(), factors=_factors(60).numpy())
    return path


_CODES_DIR = tempfile.TemporaryDirectory(prefix="diffrep-sweep-codes-")  # removed when the session ends

# the suite behind ``diffrep eval --codes``: its messages name the command-line flags; one metric name
# is taken as a one-metric list
CASES += [
    Case("suite.compute", lambda: (compute, dict(path=dict(codes=_codes(60).numpy(), factors=_factors(60).numpy()),
                                                 metrics=("mig",), mode="robust", estimator="fast",
                                                 tad_variant="infodiffusion", test_fraction=1 / 3)),
         names={"metrics": ("--metrics",), "test_fraction": ("--test-fraction",), "path": ("--codes",)},
         errors=(FileNotFoundError,), check=_finite_scores),
    Case("suite.load_codes", lambda: (load_codes, dict(path=_codes_file())), errors=(FileNotFoundError,),
         names={"path": ("--codes",)}),
    Case("sample_warnings", lambda: (sample_warnings, dict(metrics=("mig", "dci"), n_train=10, n_test=5,
                                                           factor_sizes=(3, 4), n_attr=None)),
         skip=("n_attr:None",), accepted=("*:zero",)),
]


def _xy():
    c, f = _codes(30), _factors(30)
    return c.float(), f


# the building blocks behind the metrics (public module functions, called by the metrics above)
CASES += [
    Case("dci.fit_factors", lambda: (fit_factors, dict(xtr=_xy()[0], ytr=_xy()[1], xte=_xy()[0][:10],
                                                       estimator="fast", seed=0, n_jobs=1, max_bins=8)),
         skip=("seed:None", "n_jobs:negative", "xtr:int_dtype", "xte:int_dtype", "xte:batch-1")),
    Case("gbt.fit_predict", lambda: (fit_predict, dict(x_train=_xy()[0], y_train=_xy()[1][:, 0], x_evals=(_xy()[0],),
                                                       n_estimators=3, learning_rate=0.1, max_depth=2, max_bins=8,
                                                       seed=0)),
         accepted=("x_train:int_dtype",)),
    # C=inf is the unpenalised fit (documented)
    Case("linear.fit_logistic", lambda: (fit_logistic, dict(x=_xy()[0], ys=list(_xy()[1].T), C=1.0,
                                                            class_weight=None, max_iter=20, tol=1e-4)),
         skip=("class_weight:None",), accepted=("x:int_dtype", "C:inf", "tol:zero")),
    Case("mig.discretised_mi", lambda: (discretised_mi, dict(codes=_codes(), factors=_factors(), num_bins=5)),
         accepted=INT_CODES),
]


def _imgs(n=3, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# the Inception path on 3 tiny images (each extraction ~0.3 s on a CPU): the settings are checked before
# any image is scored, so most rows stop early; num_samples=None means "all" and device=None the default
INCEPTION_CASES = [
    Case("inception_features", lambda: (G.inception_features, dict(
        source=_imgs(), protocol="clean", num_samples=None, batch_size=2, device="cpu", seed=0, progress=False)),
         skip=("num_samples:None", "device:None", "source:batch-1")),
    Case("evaluate_generation", lambda: (G.evaluate, dict(
        real=_imgs(), fake=_imgs(seed=1), metrics=("kid", "prdc"), protocol="clean", batch_size=3, device="cpu",
        k=1, dc_k=1, kid_subsets=2, kid_subset_size=2, progress=False, allow_singular=False, strict=False)),
         skip=("dc_k:None", "device:None", "real:batch-1", "fake:batch-1")),
]


_CACHE_DIR = tempfile.TemporaryDirectory(prefix="diffrep-sweep-")  # removed when the session ends


def _inception_forward():
    from diffrep.metrics.inception import load_inception

    if "model" not in _INCEPTION:
        _INCEPTION["model"] = load_inception(device="cpu")
    return _INCEPTION["model"].forward, dict(x=torch.zeros(1, 3, 299, 299))


_INCEPTION: dict = {}
INCEPTION_CASES += [
    # path=None is the default weight file; a missing file is a FileNotFoundError naming it
    Case("load_inception", lambda: (__import__("diffrep.metrics.inception", fromlist=["x"]).load_inception,
                                    dict(path=None, device="cpu")), skip=("path:None", "device:None"),
         errors=(FileNotFoundError,), names={"path": ("x",)}, perturb=("device", "path")),
    Case("file_sha1", lambda: (__import__("diffrep.metrics.inception", fromlist=["x"]).file_sha1,
                               dict(path=fid_weights_or_none())), errors=(FileNotFoundError,), names={"path": ("x",)}),
    # x: one perturbation per kind only (each forward is ~0.3 s on a CPU)
    Case("FIDInception.forward", _inception_forward, skip=("x:nan", "x:inf", "x:empty", "x:batch-1", "x:ndim+1")),
]


def _reference_statistics():
    cache = Path(_CACHE_DIR.name) / f"ref{len(list(Path(_CACHE_DIR.name).iterdir()))}.npz"
    return G.reference_statistics, dict(source=_imgs(), cache=cache, protocol="clean", batch_size=3, device="cpu",
                                        seed=0, progress=False, keep_features=False)


# only the settings are swept (each is checked before anything is scored or written)
INCEPTION_CASES.append(Case("reference_statistics", _reference_statistics,
                            perturb=("cache", "batch_size", "seed", "progress", "keep_features"),
                            extra={"cache": [("not_npz", "ref.txt")]}))
INCEPTION_ROWS, INCEPTION_IDS = expand(INCEPTION_CASES)
needs_weights = pytest.mark.skipif(fid_weights_or_none() is None, reason="no FID Inception weights")


# the valid Inception runs take ~3 s on a CPU (and are what tests/metrics/test_generation_images.py checks)
@pytest.mark.slow
@needs_weights
@pytest.mark.parametrize("case", INCEPTION_CASES, ids=[c.name for c in INCEPTION_CASES])
def test_valid_inception_call(case):
    valid_call(case)


@needs_weights
@pytest.mark.parametrize("case, arg, label", INCEPTION_ROWS, ids=INCEPTION_IDS)
def test_bad_inception_input(case, arg, label):
    run_case(case, arg, label)


test_valid_call, test_bad_input = sweep_tests(CASES)
