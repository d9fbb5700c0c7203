"""Contract of issue 19 (EncDiff + Dynamic Gaussian Anchoring + Skip Dropout): the public names of
``diffrep.methods.encdiff`` / ``diffrep.methods.dyga``, their config fields and defaults, the verbs and their
shapes, DyGA's anchors (buffers, planted means recovered, Eq. 6 alignment against an independent computation),
Skip Dropout (placement, identity in eval), FSQ, save/load, the recipes and the CLI verbs. Not the
validation gates (scripts/validate_dyga.py).

Deeper value tests: tests/methods/test_dyga.py (Eq. 6 and its gradient, argmax vs Gumbel as tau -> 0,
anchor refresh, compat dis-dis), tests/methods/test_faithful_encdiff_dyga.py, tests/methods/test_encdiff.py
(Skip Dropout drops exactly the configured skips at the rate, attention maps against the fused path) and
tests/methods/test_encdiff_cli.py."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing

import torch

import diffrep.methods.dyga as dyga_mod
import diffrep.methods.encdiff as encdiff_mod
from diffrep.methods.dyga import DyGA, DyGAConfig
from diffrep.methods.encdiff import EncDiff, EncDiffConfig


def _args(cls, name):
    return typing.get_args(typing.get_type_hints(cls)[name])


def test_public_names():
    assert {"EncDiff", "EncDiffConfig"} <= set(encdiff_mod.__all__)
    assert {"DyGA", "DyGAConfig", "align"} <= set(dyga_mod.__all__)


def test_encdiff_config_fields():
    c = EncDiffConfig()
    assert set(_args(EncDiffConfig, "loss_type")) == {"l1", "l2"}  # Eq. 2 loss, L1 or L2 per recipe
    assert c.sample_steps == 100 and "ldm" in _args(EncDiffConfig, "ddim_spacing")  # DDIM-100, LDM spacing option
    assert {"dyga", "fsq", "none"} <= set(_args(EncDiffConfig, "conditioning"))  # FSQ as a drop-in (Table 11)
    assert c.backbone_dropout == 0.0  # the Table 12 ablation is a field
    fs = c.first_stage  # f = 4 VQ autoencoder with the LDM first-stage semantics
    assert 2 ** (len(fs.ch_mult) - 1) == 4 and fs.legacy_beta and fs.mid_attention and c.scale_by_std
    assert c.unet.context_dim > 0  # cross-attention on the unit tokens
    assert c.unet.skip_dropout == 0.2 and c.unet.skip_dropout_placement == "reference_code"  # Eq. 7, rate 0.2


def test_dyga_config_fields():
    c = DyGAConfig()
    assert set(_args(DyGAConfig, "compat")) == {"paper", "dis-dis"} and c.compat == "paper"
    assert (c.lam, c.tau) == (0.1, 1e-4)  # Eq. 6 lambda, Alg. 3 tau
    assert c.assignment == "gumbel" and "argmax" in _args(DyGAConfig, "assignment")  # straight-through argmax option
    assert c.refresh_every == 1  # r (5 on Cars3D, in its recipe)
    assert "phi" in dataclasses.asdict(c) and "psi" in dataclasses.asdict(c)


def test_skip_dropout_placement_and_eval_identity():
    from diffrep.nn.unet import SkipDropout

    u = EncDiffConfig().unet  # the Table 8 U-Net at f = 4: 16, 8, 4, 2 px
    assert u.skip_dropout_levels() == {16, 8}  # the authors' code: the 16 px and 8 px skips
    drop = SkipDropout(0.2)
    s = torch.randn(4000, 3, 2, 2)
    drop.eval()
    assert drop(s) is s  # identity in eval
    drop.train()
    out = drop(s)
    kept = (out != 0).all(-1).all(-1)  # a (sample, channel) mask broadcast over H x W
    assert torch.allclose(out[kept], s[kept] / 0.8) and ((out == 0).all(-1).all(-1) == ~kept).all()
    assert abs(1 - float(kept.float().mean()) - 0.2) < 0.02


def _planted(seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[[1.0, 1.0], [4.0, 1.0], [1.0, 4.0]], [[2.0, 2.0], [6.0, 2.0], [2.0, 6.0]]])
    lab = torch.randint(0, 3, (600,), generator=g)
    feats = torch.stack([centers[u][lab] for u in range(2)], 1) + 0.05 * torch.randn(600, 2, 2, generator=g)
    return centers, feats


def test_dyga_anchors_are_buffers_recover_planted_means_and_align_by_eq6(monkeypatch):
    centers, feats = _planted()
    dy = DyGA(DyGAConfig(num_units=2, token_dim=2, n_components=3, max_components=6, p_arbitrary=0.0, min_mass=5.0))
    assert not list(dy.parameters())  # anchors are buffers: saved, never EMA-averaged (EMA averages parameters)
    assert {"anchors", "means", "active"} <= {n for n, _ in dy.named_buffers()}
    dy.fit(feats)
    # the fit's normalisation is stored with it: per-unit min / max of the features; the anchors are the mixture
    # means mapped back to the raw feature space
    assert torch.equal(dy.norm_lo, feats.amin(dim=(0, 2))) and torch.equal(dy.norm_hi, feats.amax(dim=(0, 2)))
    span = (dy.norm_hi - dy.norm_lo)[:, None, None]
    assert torch.allclose(dy.anchors[dy.active], (dy.norm_lo[:, None, None] + dy.means * span)[dy.active], atol=1e-5)
    for u in range(2):
        got = dy.anchors[u][dy.active[u]]
        assert len(got) == 3  # the planted count
        for c in centers[u]:
            assert float((got - c).norm(dim=1).min()) < 0.05  # and the planted means
    # Eq. 6 in evaluation (hard argmax): mu_hat = the unit's anchor of highest responsibility (here the nearest:
    # well-separated clusters), delta = lam exp(-mean_j |(c_j - mu_hat_j) / (|c_j| + 1e-6)|), c~ = c + delta (mu_hat - c)
    dy.eval()
    c = feats[:7] + 0.3
    out = dy(c)
    mu = dy.anchors
    d2 = ((c.transpose(0, 1)[:, :, None, :] - mu[:, None]) ** 2).sum(-1)
    d2 = torch.where(dy.active[:, None, :], d2, torch.full_like(d2, float("inf")))
    mu_hat = torch.gather(mu, 1, d2.argmin(-1)[..., None].expand(-1, -1, 2)).transpose(0, 1)
    delta = 0.1 * torch.exp(-((c - mu_hat) / (c.abs() + 1e-6)).abs().mean(-1, keepdim=True))
    assert torch.allclose(out, c + delta * (mu_hat - c), atol=1e-6, rtol=0)
    # differentiable w.r.t. the features in training
    dy.train()
    cf = c.clone().requires_grad_(True)
    dy(cf, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert cf.grad is not None and torch.isfinite(cf.grad).all()
    # the assignment: the configured one (Gumbel-softmax by default) in training, the hard argmax in evaluation
    used = []
    real = dyga_mod.align
    monkeypatch.setattr(dyga_mod, "align", lambda *a, **k: used.append(k["assignment"]) or real(*a, **k))
    dy(c, generator=torch.Generator().manual_seed(0))
    dy.eval()
    dy(c)
    assert used == ["gumbel", "hard"]


def test_encdiff_verbs_shapes_and_save_load(tmp_path):
    from diffrep.nn import load_pretrained
    from diffrep.recipes import get_recipe

    cfg = get_recipe("encdiff/shapes3d-cpu").make_config().model  # pixel space, small extractor
    torch.manual_seed(0)
    m = EncDiff(cfg)
    sig = inspect.signature(EncDiff.loss).parameters
    assert sig["step"].kind is inspect.Parameter.KEYWORD_ONLY and sig["generator"].default is None
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    g = torch.Generator().manual_seed(0)
    assert "loss" in m.loss(x, step=0, generator=g)
    m.eval()
    N = cfg.dyga.num_units
    assert m.encode(x).shape == (2, N)  # N scalars per image
    tok = m.tokens(x)
    assert tok.shape == (2, N, cfg.dyga.token_dim)
    assert m.pca_codes(x, fit_on=tok).shape == (2, N)  # PCA-per-unit codes for the metrics
    assert m.reconstruct(x, generator=g, steps=2).shape == x.shape
    assert m.sample(2, generator=g, steps=2, tokens=tok).shape == x.shape
    assert m.interchange(x, x.flip(0), generator=g, steps=2).shape == (N, 2, 3, 16, 16)  # one row per unit
    assert m.interpolate(x[:1], x[1:], alphas=(0.0, 1.0), generator=g, steps=2).shape[-3:] == (3, 16, 16)
    assert m.attention_maps(x, generator=g, steps=2).shape == (2, N, 16, 16)  # one map per token
    m.save_pretrained(tmp_path)
    back = load_pretrained(tmp_path)
    a, b = m.state_dict(), back.state_dict()
    assert isinstance(back, EncDiff) and set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("dyga.anchors") for k in a)  # the anchors are checkpointed


def test_fsq_is_a_drop_in_alternative():
    from diffrep.nn.fsq import FSQ
    from diffrep.recipes import get_recipe

    assert inspect.isclass(FSQ)
    assert get_recipe("encdiff/mpi3d-toy-fsq").make_config().model.conditioning == "fsq"


def test_recipes_of_the_issue():
    from diffrep.recipes import get_recipe

    for name, batch, r in (("encdiff/shapes3d", 512, 1), ("encdiff/mpi3d-toy", 512, 1), ("encdiff/cars3d", 512, 5),
                           ("encdiff/celeba64", 64, 1)):
        c = get_recipe(name).make_config()
        assert (c.train.batch_size, c.train.lr, c.train.ema_decay, c.model.dyga.refresh_every) == (batch, 1e-4, 0.9999, r)
        assert hasattr(c, "first_stage_path")  # a first-stage checkpoint reused by the second stage
    arms = {n: get_recipe(n).make_config().model for n in ("encdiff/mpi3d-toy-baseline", "encdiff/mpi3d-toy-dyga",
                                                           "encdiff/mpi3d-toy-sd", "encdiff/mpi3d-toy")}
    assert {n: (m.conditioning, m.unet.skip_dropout) for n, m in arms.items()} == {  # Table 4's arms
        "encdiff/mpi3d-toy-baseline": ("none", 0.0), "encdiff/mpi3d-toy-dyga": ("dyga", 0.0),
        "encdiff/mpi3d-toy-sd": ("none", 0.2), "encdiff/mpi3d-toy": ("dyga", 0.2)}
    assert get_recipe("encdiff/mpi3d-toy-disdis").make_config().model.dyga.compat == "dis-dis"
    assert get_recipe("encdiff/mpi3d-toy-bd").make_config().model.backbone_dropout > 0
    assert get_recipe("encdiff/shapes3d-cpu") is not None  # the CPU recipe
    for name in ("vq/shapes3d64", "vq/mpi3d-toy64", "vq/cars3d64", "vq/celeba64"):  # Table 7 first stages
        m = get_recipe(name).make_config().model
        assert 2 ** (len(m.ch_mult) - 1) == 4 and m.legacy_beta and m.mid_attention


def test_cli_verbs(capsys):
    from diffrep.cli import build_parser, main

    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["encdiff"]
    verbs = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"encode", "sample", "interchange", "attention", "anchors", "eval", "train"} <= set(verbs)
    assert any("--downstream" in a.option_strings for a in verbs["eval"]._actions)  # GBT sample efficiency (Table 5)
    assert main(["train", "encdiff/shapes3d-cpu", "--print-config"]) == 0
    assert "skip_dropout_placement: reference_code" in capsys.readouterr().out


def test_tad_has_the_disdiff_variant():
    """TAD's ``disdiff`` variant (used by ``encdiff eval`` on attribute data; its values: tests/metrics/test_faithful_tad_auroc.py)."""
    from diffrep.cli import build_parser

    ev = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["eval"]
    assert "disdiff" in next(a for a in ev._actions if "--tad-variant" in a.option_strings).choices


def test_split_children_start_at_mu_plus_minus_sqrt_lambda1_q1():
    """The correction: split children start at mu +- sqrt(lambda_1) q_1 (q_1 the parent's leading eigenvector)."""
    from diffrep.cluster.split import child_starts

    cov = torch.tensor([[[[4.0, 0.0], [0.0, 1.0]]]], dtype=torch.float64)  # lambda_1 = 4 along e_1
    mu = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    p0 = child_starts({"model": "full", "mu": mu, "cov": cov}, torch.tensor([0]), torch.tensor([0]))
    kids = p0["mu"][0]
    assert torch.allclose(kids.sort(0).values, torch.tensor([[-1.0, 2.0], [3.0, 2.0]], dtype=torch.float64))
    assert torch.equal(p0["cov"][0, 0], cov[0, 0]) and torch.equal(p0["pi"][0], torch.full((2,), 0.5, dtype=torch.float64))
