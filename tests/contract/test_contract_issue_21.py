"""Contract of issue 21 (the VAE-family baselines and the study runner), checked by calling every public
name by the path the issue gives and comparing with computations written here (docs/methods/vae.md,
docs/study.md).

Deeper value tests: tests/methods/test_vae_objectives.py, test_faithful_vae.py, test_vae_training.py,
tests/nn/test_fsq.py, tests/recipes/test_vae_recipes.py and tests/study/ (crash resume, --update,
--redo-changed, SLURM shares, report layout). This file pins the names, signatures, keys and the
semantics the issue states.
"""

import csv
import inspect
import json
import math

import numpy as np
import pytest
import torch
import yaml

import diffrep.methods.vae as V

CLASSES = ["AE", "VAE", "BetaVAE", "BetaTCVAE", "FactorVAE", "InfoVAE", "DIPVAE", "FSQAE"]
# each class's loss terms besides "loss": recon, kl and the method's own
TERMS = {"AE": {"recon"}, "VAE": {"recon", "kl"}, "BetaVAE": {"recon", "kl"}, "BetaTCVAE": {"recon", "kl", "tc"},
         "FactorVAE": {"recon", "kl", "tc"}, "InfoVAE": {"recon", "kl", "mmd"}, "DIPVAE": {"recon", "kl", "dip"},
         "FSQAE": {"recon"}}


def _model(name, **fields):
    cls = getattr(V, name)
    if name != "FSQAE":
        fields.setdefault("latent_dim", 3)
    torch.manual_seed(0)
    return cls(cls.config_class(image_size=32, **fields))


def _images(n=6, seed=0, channels=1):
    return torch.rand(n, channels, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- the common surface


@pytest.mark.parametrize("name", CLASSES)
def test_class_surface(name, tmp_path):
    assert name in V.__all__
    m = _model(name)
    assert isinstance(m.config, m.config_class)
    sig = inspect.signature(m.loss)
    assert list(sig.parameters)[:3] == ["batch", "step", "generator"]
    assert sig.parameters["step"].kind is inspect.Parameter.KEYWORD_ONLY  # None outside training (methods/base.py)
    assert sig.parameters["generator"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["generator"].default is None
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(1))
    assert TERMS[name] <= set(out) and "loss" in out
    assert out["loss"].requires_grad and out["loss"].dim() == 0
    with torch.no_grad():
        z = m.encode(x)
        mu = m.encoder((x + 1) / 2)[0]  # the posterior mean, what the metrics read (FSQAE: its quantised code)
        assert torch.equal(z, m.fsq(mu) if name == "FSQAE" else mu)
        rec = m.reconstruct(x)
        assert rec.shape == x.shape and torch.allclose(rec, torch.sigmoid(m.decoder(z)) * 2 - 1)
        s = m.sample(4, generator=torch.Generator().manual_seed(2))
        assert s.shape == (4, 1, 32, 32) and float(s.min()) >= -1 and float(s.max()) <= 1
    m.save_pretrained(tmp_path / name)
    from diffrep.nn import load_pretrained

    for back in (type(m).from_pretrained(tmp_path / name), load_pretrained(tmp_path / name)):
        assert type(back) is type(m) and back.config == m.config
        with torch.no_grad():
            assert torch.equal(back.encode(x), z)


def test_networks_64_and_32_px_and_both_decoders():
    for size in (32, 64):
        m = V.VAE(V.VAEConfig(image_size=size, in_channels=3, latent_dim=4))
        assert m.reconstruct(torch.zeros(2, 3, size, size)).shape == (2, 3, size, size)
    with pytest.raises(ValueError):
        V.VAEConfig(image_size=48)
    # the two likelihoods, per example summed over pixels: Bernoulli on the logits, Gaussian N(sigmoid(l), s^2)
    g = torch.Generator().manual_seed(3)
    logits, x01 = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64), torch.rand(2, 1, 4, 4, generator=g,
                                                                                       dtype=torch.float64)
    bce = (torch.clamp(logits, min=0) - logits * x01 + torch.log1p(torch.exp(-logits.abs()))).sum((1, 2, 3))
    torch.testing.assert_close(V.reconstruction_loss(logits, x01, decoder="bernoulli"), bce)
    s = 0.3
    nll = ((torch.sigmoid(logits) - x01) ** 2 / (2 * s * s) + 0.5 * math.log(2 * math.pi * s * s)).sum((1, 2, 3))
    torch.testing.assert_close(V.reconstruction_loss(logits, x01, decoder="gaussian", decoder_sigma=s), nll)


# ---------------------------------------------------------------- each objective, by value


def _parts(m, x, seed):
    """mu, logvar, z (drawn as the model draws it from a generator seeded ``seed``), recon, and the generator."""
    g = torch.Generator().manual_seed(seed)
    x01 = (x + 1) / 2
    mu, logvar = m.encoder(x01)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
    l = m.decoder(z)
    recon = (torch.clamp(l, min=0) - l * x01 + torch.log1p(torch.exp(-l.abs()))).sum((1, 2, 3)).mean()
    return mu, logvar, z, recon, g


def _kl(mu, logvar):  # KL(N(mu, diag exp(logvar)) || N(0, I)), summed over latents, averaged over the batch
    return (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).sum(1).mean()


def test_vae_and_beta_vae_losses_are_recon_plus_weighted_closed_form_kl():
    x = _images()
    for name, fields, w in (("VAE", {}, 1.0), ("BetaVAE", {}, 4.0), ("BetaVAE", {"beta": 16.0}, 16.0)):
        m = _model(name, **fields)
        out = m.loss(x, step=3, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            mu, logvar, z, recon, _ = _parts(m, x, 5)
        torch.testing.assert_close(out["kl"], _kl(mu, logvar))
        torch.testing.assert_close(out["recon"], recon)
        torch.testing.assert_close(out["loss"].detach(), recon + w * _kl(mu, logvar))
    # the capacity-annealed variant (Burgess et al. 2018): recon + gamma |KL - C|, C rising linearly to C_max
    m = _model("BetaVAE", capacity_max=25.0, capacity_gamma=1000.0, capacity_steps=100)
    out = m.loss(x, step=40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mu, logvar, z, recon, _ = _parts(m, x, 5)
    torch.testing.assert_close(out["loss"].detach(), recon + 1000.0 * (_kl(mu, logvar) - 10.0).abs())
    ae = _model("AE")
    with torch.no_grad():
        mu = ae.encoder((x + 1) / 2)[0]  # deterministic: z = mu
        l = ae.decoder(mu)
        want = (torch.clamp(l, min=0) - l * (x + 1) / 2 + torch.log1p(torch.exp(-l.abs()))).sum((1, 2, 3)).mean()
    torch.testing.assert_close(ae.loss(x, step=0)["loss"].detach(), want)


def _log_q(z, mu, logvar):
    """log q(z_ik | x_j) [i, j, k], from the Gaussian density written out."""
    m, d = z.shape
    out = np.empty((m, m, d))
    for i in range(m):
        for j in range(m):
            for k in range(d):
                var = math.exp(logvar[j, k])
                out[i, j, k] = -0.5 * math.log(2 * math.pi * var) - (z[i, k] - mu[j, k]) ** 2 / (2 * var)
    return out


def _tc_brute(z, mu, logvar, estimator, n=None):
    """Chen et al. 2018 App. C: mean_i [log q(z_i) - sum_k log q(z_ik)] with the minibatch weights."""
    lq = _log_q(z, mu, logvar)
    m, d = z.shape
    if estimator == "mss":  # w_ii = 1/N, the next example (cyclic) (N - M + 1)/(N (M - 1)), others 1/(M - 1)
        w = np.full((m, m), 1 / (m - 1))
        for i in range(m):
            w[i, i] = 1 / n
            w[i, (i + 1) % m] = (n - m + 1) / (n * (m - 1))
    else:
        w = np.full((m, m), 1 / (n * m) if estimator == "mws" else 1.0)  # "dlib": the mws sums, no constant
    tc = []
    for i in range(m):
        log_qz = math.log(sum(w[i, j] * math.exp(lq[i, j].sum()) for j in range(m)))
        log_prod = sum(math.log(sum(w[i, j] * math.exp(lq[i, j, k]) for j in range(m))) for k in range(d))
        tc.append(log_qz - log_prod)
    return float(np.mean(tc))


def test_total_correlation_signature_and_estimators_against_brute_force():
    sig = inspect.signature(V.total_correlation)
    assert [(p.name, p.kind, p.default) for p in sig.parameters.values()] == [
        ("z", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("mu", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("logvar", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("estimator", inspect.Parameter.KEYWORD_ONLY, "mws"),
        ("dataset_size", inspect.Parameter.KEYWORD_ONLY, None)]
    g = torch.Generator().manual_seed(6)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.5 - 1
    z = mu + torch.exp(0.5 * logvar) * torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = (z.numpy(), mu.numpy(), logvar.numpy())
    for est, n in (("mws", 1000), ("mss", 1000), ("mss", 5), ("dlib", None)):
        got = V.total_correlation(z, mu, logvar, estimator=est, dataset_size=n)
        assert got.dim() == 0 and float(got) == pytest.approx(_tc_brute(*a, est, n), rel=1e-10, abs=1e-10)
    assert float(V.total_correlation(z, mu, logvar, dataset_size=1000)) == pytest.approx(
        _tc_brute(*a, "mws", 1000), rel=1e-10)  # the default estimator is "mws"
    # known limits: one latent has no total correlation; "dlib" = "mws" - (d - 1) log(N M)
    assert float(V.total_correlation(z[:, :1], mu[:, :1], logvar[:, :1], estimator="mss", dataset_size=50)) == \
        pytest.approx(0.0, abs=1e-12)
    assert float(V.total_correlation(z, mu, logvar, estimator="dlib")) == pytest.approx(
        float(V.total_correlation(z, mu, logvar, estimator="mws", dataset_size=70)) - 2 * math.log(70 * 5), rel=1e-12)
    with pytest.raises(ValueError, match="dataset_size"):
        V.total_correlation(z, mu, logvar, estimator="mss")
    with pytest.raises(ValueError, match="dataset_size"):
        V.total_correlation(z, mu, logvar, estimator="dlib", dataset_size=100)
    with pytest.raises(ValueError, match="estimator"):
        V.total_correlation(z, mu, logvar, estimator="mse", dataset_size=100)


def test_beta_tcvae_loss_is_elbo_plus_extra_tc_weight():
    m = _model("BetaTCVAE", beta=6.0)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        mu, logvar, z, recon, _ = _parts(m, x, 7)
    tc = _tc_brute(z.double().numpy(), mu.double().numpy(), logvar.double().numpy(), "dlib")  # the model's default
    assert float(out["tc"]) == pytest.approx(tc, rel=1e-4, abs=1e-4)
    torch.testing.assert_close(out["loss"].detach(), recon + _kl(mu, logvar) + 5.0 * out["tc"])


def test_dip_regulariser_signature_and_value():
    sig = inspect.signature(V.dip_regulariser)
    assert [(p.name, p.kind, p.default) for p in sig.parameters.values()] == [
        ("mu", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("logvar", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("kind", inspect.Parameter.KEYWORD_ONLY, "i"), ("lambda_od", inspect.Parameter.KEYWORD_ONLY, 10.0),
        ("lambda_d", inspect.Parameter.KEYWORD_ONLY, None)]
    g = torch.Generator().manual_seed(8)
    mu, logvar = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g,
                                                                                 dtype=torch.float64)
    m_ = mu.numpy()
    cov = (m_ - m_.mean(0)).T @ (m_ - m_.mean(0)) / len(m_)  # Cov_p(x)[mu(x)], the batch (biased) estimate
    cov2 = cov + np.diag(np.exp(logvar.numpy()).mean(0))  # DIP-VAE-II: + E[diag exp(logvar)]

    def penalty(c, lod, ld):
        off = sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
        return lod * off + ld * sum((c[i, i] - 1) ** 2 for i in range(3))

    # lambda_d None = the paper's default: 10 lambda_od for DIP-VAE-I, lambda_od for DIP-VAE-II
    assert float(V.dip_regulariser(mu, logvar)) == pytest.approx(penalty(cov, 10.0, 100.0), rel=1e-12)
    assert float(V.dip_regulariser(mu, logvar, kind="ii", lambda_od=2.0)) == pytest.approx(penalty(cov2, 2.0, 2.0),
                                                                                          rel=1e-12)
    assert float(V.dip_regulariser(mu, logvar, kind="i", lambda_od=3.0, lambda_d=0.5)) == pytest.approx(
        penalty(cov, 3.0, 0.5), rel=1e-12)
    m = _model("DIPVAE", kind="ii", lambda_od=5.0)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        mu, logvar, z, recon, _ = _parts(m, x, 9)
    torch.testing.assert_close(out["dip"], V.dip_regulariser(mu, logvar, kind="ii", lambda_od=5.0))
    torch.testing.assert_close(out["loss"].detach(), recon + _kl(mu, logvar) + out["dip"])


def test_factor_vae_discriminator_tc_permutation_and_own_optimiser():
    m = _model("FactorVAE", gamma=40.0, disc_hidden=16, disc_layers=2)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        mu, logvar, z, recon, g = _parts(m, x, 10)
        logits = m.discriminator(z)
        tc = (logits[:, 0] - logits[:, 1]).mean()  # log D / (1 - D) of the two-way softmax
        zp = V.permute_dims(z, generator=g)  # drawn after the posterior sample, as in the loss
        lp = m.discriminator(zp)
        ce = lambda l, c: -torch.log_softmax(l, 1)[:, c].mean()  # noqa: E731
    torch.testing.assert_close(out["tc"], tc)
    torch.testing.assert_close(out["loss"].detach(), recon + _kl(mu, logvar) + 40.0 * tc)
    torch.testing.assert_close(out["disc_loss"].detach(), 0.5 * (ce(logits, 0) + ce(lp, 1)))
    # each column permuted independently across the batch
    zz = torch.arange(40.0).reshape(8, 5)
    p = V.permute_dims(zz, generator=torch.Generator().manual_seed(0))
    for k in range(5):
        assert sorted(p[:, k].tolist()) == zz[:, k].tolist()
    rows = {tuple(((p[:, k] - k) / 5).long().tolist()) for k in range(5)}
    assert len(rows) > 1  # not one permutation for all columns
    # the discriminator has its own parameters and optimiser settings (the trainer's two-optimiser path)
    assert m.discriminator_optimizer_settings() == {"lr": 1e-4, "betas": (0.5, 0.9)}
    disc = {id(q) for q in m.discriminator_parameters()}
    assert disc == {id(q) for q in m.discriminator.parameters()}
    assert not disc & {id(q) for q in list(m.encoder.parameters()) + list(m.decoder.parameters())}


def test_info_vae_mmd_is_the_fused_op():
    from diffrep.ops.mmd import mmd2

    m = _model("InfoVAE", alpha=0.5, lambda_=10.0)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        mu, logvar, z, recon, g = _parts(m, x, 11)
        prior = torch.randn(z.shape, generator=g)  # as many N(0, I) draws, after the posterior draw
        mmd = mmd2(z, prior, "rbf", estimator="biased")
        # the biased V-statistic of exp(-|a - b|^2 / d^2), written out
        k = lambda a, b: torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / z.shape[1] ** 2)  # noqa: E731
        direct = k(z, z).mean() + k(prior, prior).mean() - 2 * k(z, prior).mean()
    torch.testing.assert_close(out["mmd"], mmd)
    torch.testing.assert_close(mmd, direct, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss"].detach(), recon + 0.5 * _kl(mu, logvar) + 9.5 * mmd)


def test_fsq_autoencoder_rounds_with_a_straight_through_gradient():
    m = _model("FSQAE", levels=(5, 5, 5))
    x = _images()
    with torch.no_grad():
        codes = m.encode(x)
    assert codes.shape == (6, 3)
    assert set(codes.flatten().tolist()) <= {-1.0, -0.5, 0.0, 0.5, 1.0}  # L = 5 levels in [-1, 1]
    zin = torch.linspace(-3, 3, 13, dtype=torch.float64).reshape(-1, 1).repeat(1, 3).requires_grad_(True)
    q = m.fsq(zin)
    h = (5 - 1) * (1 - 1e-3) / 2  # FSQ App. A.1: tanh(z) h, rounded, divided by the half width 2
    torch.testing.assert_close(q.detach(), torch.round(torch.tanh(zin.detach()) * h) / 2)
    q.sum().backward()  # straight through: the gradient of the bound
    torch.testing.assert_close(zin.grad, (1 - torch.tanh(zin.detach()) ** 2) * h / 2)
    out = m.loss(x, step=0)
    assert set(out) == {"loss", "recon"}  # no KL, no codebook loss


# ---------------------------------------------------------------- the published settings by name


def test_recipes_reproduce_disentanglement_libs_study_by_name():
    from diffrep.recipes import get_recipe
    from diffrep.recipes.vae import GRIDS

    # Locatello et al. 2019 (disentanglement_lib unsupervised study) grids per method
    assert GRIDS["beta-vae"] == ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0))
    assert GRIDS["annealed-vae"] == ("capacity_max", (5.0, 10.0, 25.0, 50.0, 75.0, 100.0))
    assert GRIDS["factor-vae"] == ("gamma", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0))
    assert GRIDS["dip-vae-i"] == GRIDS["dip-vae-ii"] == ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0))
    assert GRIDS["beta-tcvae"] == ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0))
    for method in ("ae", "vae", "beta-vae", "annealed-vae", "beta-tcvae", "factor-vae", "info-vae", "dip-vae-i",
                   "dip-vae-ii", "fsq-ae"):
        for ds in ("dsprites", "shapes3d", "mpi3d-toy", "cars3d", "cpu"):
            cfg = get_recipe(f"vae/{method}-{ds}").make_config()
            assert cfg.model.image_size == (32 if ds == "cpu" else 64)
            if ds != "cpu":
                t = cfg.train
                assert (t.batch_size, t.lr, tuple(t.betas), t.steps) == (64, 1e-4, (0.9, 0.999), 300_000)
                assert cfg.model.decoder == "bernoulli" and cfg.model.in_channels == (1 if ds == "dsprites" else 3)
    assert get_recipe("vae/dip-vae-ii-dsprites").make_config().model.kind == "ii"
    annealed = get_recipe("vae/annealed-vae-dsprites").make_config().model
    assert (annealed.capacity_max, annealed.capacity_gamma, annealed.capacity_steps) == (25.0, 1000.0, 100_000)


# ---------------------------------------------------------------- the study runner


def test_the_shipped_studies_and_the_documented_example_parse_into_their_cells():
    import re
    from pathlib import Path

    from diffrep.study import load_study, parse_study

    root = Path(__file__).resolve().parents[2]
    # the CPU study of the README: 3 methods x 2 weights x 2 seeds on procedural dSprites
    assert "diffrep study run studies/dsprites_cpu.yaml" in (root / "README.md").read_text()
    st = load_study(root / "studies" / "dsprites_cpu.yaml")
    assert len(st.cells) == 12
    assert {c.folder for c in st.cells} >= {"beta-vae/dsprites/beta=1/seed0", "factor-vae/dsprites/gamma=40/seed1"}
    # every method family is a study method through the common surface (ParamReL, SAMI, ...)
    recipes = {c.recipe.split("/")[0] for c in load_study(root / "studies" / "all_methods_cpu.yaml").cells}
    assert {"vae", "paramrel", "sami", "multibeta", "encdiff", "diffae", "infodiffusion", "disdiff"} <= recipes
    # the study file shown in docs/study.md is a valid study (it named a recipe that does not exist until 2026-12-07)
    block = re.search(r"```yaml\n(.*?)```", (root / "docs" / "study.md").read_text(), re.S).group(1)
    assert {c.recipe for c in parse_study(yaml.safe_load(block), "docs/study.md").cells} >= {"vae/beta-vae-cpu",
                                                                                            "vae/ae-cpu"}


def test_study_run_and_report(tmp_path, capsys):
    from diffrep.cli import main
    from diffrep.study import partition, shard_from_env

    study = {"study": "tiny", "seeds": [0, 1], "steps": 1,
             "overrides": {"train.device": "cpu", "train.batch_size": 4, "train.log_every": 1},
             "methods": {"beta-vae": {"recipe": "vae/beta-vae-cpu", "overrides": {"model.latent_dim": 2},
                                      "grid": {"model.beta": [1, 4]}}},
             "eval": {"metrics": ["mig"], "num_train": 48, "num_test": 16, "device": "cpu"}}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study))
    out = tmp_path / "o"
    assert main(["study", "run", str(f), "--out", str(out)]) == 0
    cells = [f"beta-vae/dsprites/beta={b}/seed{s}" for b in (1, 4) for s in (0, 1)]
    for c in cells:  # one folder per cell, with the metrics JSON and the completion marker
        assert (out / c / "done.json").is_file() and "mig" in json.loads((out / c / "metrics.json").read_text())[
            "scores"]
    stamp = [(out / c / "metrics.json").stat().st_mtime_ns for c in cells]
    capsys.readouterr()
    assert main(["study", "run", str(f), "--out", str(out)]) == 0  # finished cells are never redone
    assert "ran 0, skipped 4 finished" in capsys.readouterr().err
    assert [(out / c / "metrics.json").stat().st_mtime_ns for c in cells] == stamp
    # one cell per rank/process/job: the shares of all ranks cover every cell once; SLURM array variables
    assert sorted(i for r in range(3) for i in partition(4, r, 3)) == [0, 1, 2, 3]
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "2",
           "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env(None, None, env=env) == (2, 4)
    # the report: mean +- sample std over seeds in Markdown and CSV, plots in PNG and SVG
    assert main(["study", "report", str(out)]) == 0
    rep = out / "report"
    with open(rep / "table.csv", newline="") as fh:
        rows = {r["setting"]: r for r in csv.DictReader(fh)}
    for b in (1, 4):
        v = [json.loads((out / f"beta-vae/dsprites/beta={b}/seed{s}/metrics.json").read_text())["scores"]["mig"]
             for s in (0, 1)]
        r = rows[f"beta={b}"]
        assert r["method"] == "beta-vae"
        assert float(r["dsprites/mig/mean"]) == pytest.approx(np.mean(v), rel=1e-9)
        assert float(r["dsprites/mig/std"]) == pytest.approx(np.std(v, ddof=1), rel=1e-9)
    md = (rep / "report.md").read_text()
    assert "| beta-vae | beta=1 | 2 |" in md and "±" in md
    for stem in ("box_mig", "curve_beta-vae_beta"):
        assert (rep / f"{stem}.png").stat().st_size > 0 and (rep / f"{stem}.svg").stat().st_size > 0
