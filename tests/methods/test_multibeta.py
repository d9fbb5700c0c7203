"""The two-phase pipeline (docs/methods/multibeta.md#the-pipeline): phase switching and freezing, the trainer
training phase 1 then phase 2 (the VAE unchanged by phase 2, checksum), the adversarial phase 3 (only the decoder
and the discriminator move; the two losses' gradients kept apart), the verbs against their definitions, save/load,
and the input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from diffrep.config import ConfigError
from diffrep.methods.multibeta import MultiBeta, MultiBetaConfig, multibeta_config
from diffrep.nn.pretrained import load_pretrained

from helpers import untrained_on_purpose


def tiny(**kw) -> MultiBeta:
    torch.manual_seed(0)
    vae = {"hidden": 16, "beta_embed_dim": 8, **kw.pop("vae", {})}
    den = {"hidden": 16, "depth": 1, **kw.pop("denoiser", {})}
    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5, vae=vae, denoiser=den, **kw)
    m = untrained_on_purpose(MultiBeta(cfg))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def images(n=3, seed=1):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def phase3_reconstruction(m, x, seed):
    """Phase 3's decode of f(x, 0) + sigma_0 eps with eps drawn first from gen(seed), as ``loss`` draws it
    (grad flows to the decoder only)."""
    zero = torch.zeros(x.shape[0])
    with torch.no_grad():
        f = m.vae.encoder(x, zero)
        z = f + m.vae.sigma(zero)[:, None] * torch.randn(f.shape, generator=gen(seed))
    return m.vae.decoder(z, zero)


def trainable(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_phases_freeze_what_they_do_not_train():
    m = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4)
    names = {n for n, _ in m.named_parameters()}
    assert trainable(m) == {n for n in names if n.startswith("vae.")} and m.phase == 1
    assert m.discriminator_parameters() == []
    m.set_phase(2)
    assert trainable(m) == {n for n in names if n.startswith("denoiser.")}
    assert m.config.phase == 2
    torch.testing.assert_close(m.denoiser.sigma_table, m.vae.sigma_grid().detach())  # Alg. 2 reads the phase-1 table
    m.train()
    assert m.denoiser.training and not m.vae.training
    m.set_phase(3)
    assert trainable(m) == {n for n in names if n.startswith(("vae.decoder.", "discriminator."))}
    assert len(m.discriminator_parameters()) == len(list(m.discriminator.parameters()))
    m.train()
    assert m.vae.decoder.training and not m.vae.encoder.training and not m.denoiser.training
    m.set_phase(1)
    assert trainable(m) == {n for n in names if n.startswith("vae.")}


def test_phase_2_refuses_a_non_increasing_sigma_table():
    m = tiny(vae=dict(hidden=16, beta_embed_dim=8, sigma_table="free"))
    with torch.no_grad():
        m.vae.log_sigma2_table[3] = m.vae.log_sigma2_table[2] - 0.1
    with pytest.raises(ValueError, match="strictly increasing"):
        m.set_phase(2)


def test_loss_dispatches_on_the_phase():
    m = tiny()
    x = images()
    beta = torch.tensor([0.0, 0.4, 1.0])
    a = m.loss(x, step=0, beta=beta, generator=gen())
    b = m.vae.loss(x, step=0, beta=beta, generator=gen())
    assert float(a["loss"].detach()) == float(b["loss"].detach()) and set(a) == {"loss", "recon", "kl", "mse", "sigma2_floor", "log_s2_floor"}
    m.set_phase(2)
    a = m.loss(x, step=0, generator=gen())
    b = m.denoiser.loss(x, step=0, generator=gen(), encoder=m.vae.encode)
    assert float(a["loss"]) == float(b["loss"]) and set(a) == {"loss", "eps_mse", "delta_mse"}
    with pytest.raises(ValueError, match="phase 2"):
        m.loss(x, step=0, beta=beta)


def test_trainer_trains_phase_1_then_phase_2_with_the_vae_frozen(tmp_path):
    from diffrep.train import Trainer
    from diffrep.train.config import TrainConfig

    m = tiny()
    ds = TensorDataset(images(8))
    tc = TrainConfig(steps=2, batch_size=4, device="cpu", ckpt_every=0, log_every=1, ema_decay=0)
    den0 = {k: v.clone() for k, v in m.denoiser.state_dict().items()}
    vae0 = {k: v.clone() for k, v in m.vae.state_dict().items()}
    Trainer(m, ds, tc, tmp_path / "p1").train()
    assert all(torch.equal(den0[k], v) for k, v in m.denoiser.state_dict().items())  # phase 1 leaves psi alone
    assert not all(torch.equal(vae0[k], v) for k, v in m.vae.state_dict().items())
    vae1 = {k: v.clone() for k, v in m.vae.state_dict().items()}
    m.set_phase(2)
    Trainer(m, ds, tc, tmp_path / "p2").train()
    assert all(torch.equal(vae1[k], v) for k, v in m.vae.state_dict().items())  # spec test 12: phase 1 frozen
    assert not torch.equal(den0["net.inp.weight"], m.denoiser.state_dict()["net.inp.weight"])
    loaded = load_pretrained(tmp_path / "p2" / "final")
    assert isinstance(loaded, MultiBeta) and loaded.phase == 2
    torch.testing.assert_close(loaded.denoiser.sigma_table, m.vae.sigma_grid().detach())


def test_phase_3_trains_the_decoder_and_the_discriminator_only(tmp_path):
    from diffrep.train import Trainer
    from diffrep.train.config import TrainConfig

    m = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4)
    m.set_phase(2)
    m.set_phase(3)
    x = images(4)
    out = m.loss(x, step=0, generator=gen())
    assert {"loss", "disc_loss", "rec", "g_loss", "disc_lambda"} <= set(out)
    # the gradient paths stay apart: disc_loss reaches only the discriminator, loss only the decoder
    m.zero_grad()
    out["disc_loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in m.vae.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.discriminator.parameters())
    m.zero_grad()
    out["loss"].backward()
    assert all(p.grad is None for p in m.discriminator.parameters())
    assert all(p.grad is None for p in m.vae.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.vae.decoder.parameters())
    # rec is the L1 of the beta = 0 reconstruction of f(x, 0) + sigma_0 eps
    with torch.no_grad():
        r = m.loss(x, step=0, generator=gen(3))["rec"]
        rec = phase3_reconstruction(m, x, 3)
    assert float(r) == pytest.approx(float((rec - x).abs().mean()), rel=1e-6)
    # the loss values: L1 + lambda * (-D(rec)), lambda = adv_disc_weight x Eq. 7's adaptive weight; hinge for D
    from diffrep.nn.vq import adaptive_weight, hinge_d_loss

    out = m.loss(x, step=0, generator=gen(3))
    rec = phase3_reconstruction(m, x, 3)
    l1 = (rec - x).abs().mean()
    g_loss = -m.discriminator(rec).mean()
    lam = 0.5 * adaptive_weight(l1, g_loss, m.vae.decoder.last_layer())
    assert float(out["disc_lambda"]) == pytest.approx(float(lam), rel=1e-5) and float(lam) > 0
    assert float(out["loss"]) == pytest.approx(float(l1 + lam * g_loss), rel=1e-5)
    assert float(out["disc_loss"]) == pytest.approx(float(hinge_d_loss(m.discriminator(x), m.discriminator(rec))), rel=1e-5)
    m.config = type(m.config)(**{**vars(m.config), "adv_disc_start": 5})
    early = m.loss(x, step=4, generator=gen(3))
    assert float(early["disc_loss"]) == 0.0 and "g_loss" not in early
    assert float(early["loss"]) == pytest.approx(float(l1), rel=1e-5)
    assert "g_loss" in m.loss(x, step=5, generator=gen(3))
    m.config = type(m.config)(**{**vars(m.config), "adv_disc_start": 0, "adv_rec_loss": "l2"})
    assert float(m.loss(x, step=0, generator=gen(3))["rec"]) == pytest.approx(float((rec - x).pow(2).mean()), rel=1e-5)
    m.config = type(m.config)(**{**vars(m.config), "adv_rec_loss": "l1"})
    before = {k: v.clone() for k, v in m.state_dict().items()}
    Trainer(m, TensorDataset(images(8)), TrainConfig(steps=2, batch_size=4, device="cpu", ckpt_every=0, ema_decay=0),
            tmp_path).train()
    after = m.state_dict()
    moved = {k.split(".")[0] + "." + k.split(".")[1] for k in before if not torch.equal(before[k], after[k])}
    assert moved <= {"vae.decoder", "discriminator.net"} and "vae.decoder" in moved


def test_verbs_follow_their_definitions():
    m = tiny(denoiser=dict(hidden=16, depth=1))
    m.set_phase(2)
    x = images()
    b = 0.6
    f = m.vae.encode(x, b)
    torch.testing.assert_close(m.encode(x, b), f)
    torch.testing.assert_close(m.encode(x), m.vae.encode(x, 0.5))  # representation_beta
    g = gen(4)
    noisy = m.encode(x, b, noise=True, generator=gen(4))
    torch.testing.assert_close(noisy, f + m.vae.sigma(b) * torch.randn(f.shape, generator=g))
    z = torch.randn(3, 3, generator=gen(5))
    torch.testing.assert_close(m.decode(z, 0.2), m.vae.decode(z, 0.2))
    torch.testing.assert_close(m.reconstruct(x, b, denoise=False), m.vae.decode(f, b))
    # reconstruct = encode with noise, denoise to 0, decode at 0, on one generator stream
    g = gen(6)
    want = m.vae.decode(m.denoiser.denoise(m.encode(x, b, noise=True, generator=g), b, 0.0, generator=g), 0.0)
    torch.testing.assert_close(m.reconstruct(x, b, generator=gen(6)), want)
    torch.testing.assert_close(m.denoise_decode(z, b, generator=gen(7)),
                               m.vae.decode(m.denoiser.denoise(z, b, generator=gen(7)), 0.0))
    torch.testing.assert_close(m.sample(2, generator=gen(8)), m.vae.decode(m.denoiser.sample(2, generator=gen(8)), 0.0).clamp(-1, 1))
    # edit: alpha = 0 is the reconstruction; every alpha shares the encoding and the sampler noise
    d = torch.tensor([1.0, -1.0, 0.5])
    ed = m.edit(x, b, d, [0.0, 1.5], generator=gen(6))
    assert ed.shape == (3, 2, 1, 32, 32)
    torch.testing.assert_close(ed[:, 0], m.reconstruct(x, b, generator=gen(6)))
    g = gen(6)
    z0 = m.encode(x, b, noise=True, generator=g)
    torch.testing.assert_close(ed[:, 1], m.denoise_decode(z0 + 1.5 * d, b, generator=g))
    direct = m.edit(x, b, d, [2.0], denoise=False)
    torch.testing.assert_close(direct[:, 0], m.vae.decode(f + 2.0 * d, b))
    # traverse: unit k set to v
    tr = m.traverse(x, b, dims=[0, 2], values=[-1.0, 1.0], denoise=False)
    assert tr.shape == (3, 2, 2, 1, 32, 32)
    zz = f.clone()
    zz[:, 2] = 1.0
    torch.testing.assert_close(tr[:, 1, 1], m.vae.decode(zz, b))
    trd = m.traverse(x, b, dims=[1], values=[0.3], generator=gen(9))
    g = gen(9)
    zz = m.encode(x, b, noise=True, generator=g)
    zz[:, 1] = 0.3
    torch.testing.assert_close(trd[:, 0, 0], m.denoise_decode(zz, b, generator=g))
    # Fig. 2 sweep
    sw = m.beta_sweep(x, [0.0, 0.4, 1.0], generator=gen(1))
    assert sw["direct"].shape == sw["denoised"].shape == (3, 3, 1, 32, 32)
    torch.testing.assert_close(sw["direct"][1], m.vae.decode(m.vae.encode(x, 0.4), 0.4))
    torch.testing.assert_close(sw["betas"], torch.tensor([0.0, 0.4, 1.0]))
    g = gen(1)
    for k, bk in enumerate([0.0, 0.4, 1.0]):
        zk = m.encode(x, bk, noise=True, generator=g)
        torch.testing.assert_close(sw["denoised"][k], m.denoise_decode(zk, bk, generator=g))
    # without a generator the verbs still share one noise draw across the edit grid
    ed = m.edit(x, b, d, [0.5, 0.5])
    torch.testing.assert_close(ed[:, 0], ed[:, 1])
    tr = m.traverse(x, b, dims=[0, 0], values=[0.2])
    torch.testing.assert_close(tr[:, 0], tr[:, 1])


def test_encoding_noise_off_denoises_from_the_mean():
    m = tiny(encoding_noise=False)
    m.set_phase(2)
    x, b = images(), 0.6
    f = m.vae.encode(x, b)
    torch.testing.assert_close(m.reconstruct(x, b, generator=gen(2)), m.denoise_decode(f, b, generator=gen(2)))
    ed = m.edit(x, b, torch.ones(3), [1.0], generator=gen(2))
    torch.testing.assert_close(ed[:, 0], m.denoise_decode(f + 1.0, b, generator=gen(2)))
    sw = m.beta_sweep(x, [0.4], generator=gen(2))
    torch.testing.assert_close(sw["denoised"][0], m.denoise_decode(m.vae.encode(x, 0.4), 0.4, generator=gen(2)))


def test_save_load_round_trip_of_the_pipeline_and_its_parts(tmp_path):
    m = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4)
    m.set_phase(2)
    d = m.save_pretrained(tmp_path / "mb")
    loaded = MultiBeta.from_pretrained(d)
    assert loaded.config == m.config and loaded.phase == 2
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    torch.testing.assert_close(loaded.sample(2, generator=gen(1)), m.sample(2, generator=gen(1)), rtol=0, atol=0)
    x = images()
    torch.testing.assert_close(loaded.reconstruct(x, 0.4, generator=gen(2)), m.reconstruct(x, 0.4, generator=gen(2)),
                               rtol=0, atol=0)
    for part in ("vae", "denoiser"):
        sub = getattr(m, part)
        sd = sub.save_pretrained(tmp_path / part)
        again = load_pretrained(sd)
        assert type(again) is type(sub)
        assert all(torch.equal(v, again.state_dict()[k]) for k, v in sub.state_dict().items())
    den = load_pretrained(tmp_path / "denoiser")
    assert int(den.schedule_set) == 1
    torch.testing.assert_close(den.sample(2, generator=gen(1)), m.denoiser.sample(2, generator=gen(1)), rtol=0, atol=0)


def test_newcomer_wrong_inputs_are_named():
    """Inputs a script gets wrong: NaN images reach no encoder (MultiBetaVAE.encode returned NaN codes), a generator
    that is not a torch.Generator is named before any draw (it was torch.randn's overload listing), a per-example
    beta tensor given to a one-beta verb says where per-example betas go, and a bad entry of a list names its index."""
    m = tiny()
    m.set_phase(2)
    x = images()
    bad = x.clone()
    bad[1, 0, 2, 2] = float("nan")
    for f in (lambda: m.vae.encode(bad, 0.5), lambda: m.vae.encode(bad, torch.full((3,), 0.25))):
        with pytest.raises(ValueError, match="MultiBetaVAE.encode: x holds NaN or infinite values"):
            f()
    # the finite path is unchanged: the encoder's own output at the same beta
    torch.testing.assert_close(m.vae.encode(x, 0.5), m.vae.encoder(x, torch.full((3,), 0.5)), rtol=0, atol=0)
    z = torch.zeros(3, 3)
    calls = {
        "MultiBeta.encode": lambda g: m.encode(x, 0.5, noise=True, generator=g),
        "MultiBeta.reconstruct": lambda g: m.reconstruct(x, 0.5, generator=g),
        "MultiBeta.reconstruct direct": lambda g: m.reconstruct(x, 0.5, denoise=False, generator=g),
        "MultiBeta.denoise": lambda g: m.denoise(z, 0.6, generator=g),
        "MultiBeta.sample": lambda g: m.sample(2, generator=g),
        "MultiBeta.edit": lambda g: m.edit(x, 0.6, torch.ones(3), [1.0], generator=g),
        "MultiBeta.traverse": lambda g: m.traverse(x, 0.6, dims=[0], values=[1.0], generator=g),
        "MultiBeta.beta_sweep": lambda g: m.beta_sweep(x, [0.6], generator=g),
        "LatentDenoiser.denoise": lambda g: m.denoiser.denoise(z, 0.6, generator=g),
        "LatentDenoiser.sample": lambda g: m.denoiser.sample(2, generator=g),
        "MultiBeta.loss (phase 2)": lambda g: m.loss(x, step=0, generator=g),
        "MultiBetaVAE.loss, beta given": lambda g: m.vae.loss(x, step=0, beta=torch.full((3,), 0.2), generator=g),
    }
    adv = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4)
    adv.set_phase(3)
    calls["MultiBeta.loss (phase 3)"] = lambda g: adv.loss(x, step=0, generator=g)
    for who, call in calls.items():
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
            call(7)
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got str"):
            call("seed")
    for f in (lambda: m.encode(x, torch.full((3,), 0.4)), lambda: m.decode(z, torch.zeros(3)),
              lambda: m.reconstruct(x, torch.full((3,), 0.4))):
        with pytest.raises(ValueError, match=r"beta must be one number here, got a tensor of shape \(3,\); for one "
                                             "beta per example call model.vae.encode"):
            f()
    # a one-element tensor is still one number: the same code as the float
    torch.testing.assert_close(m.encode(x, torch.tensor([0.4])), m.encode(x, 0.4), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0, B=1\], got 1.5"):
        m.beta_sweep(x, [0.2, 1.5])
    with pytest.raises(ValueError, match=r"values\[2\] must be a finite number, got nan"):
        m.traverse(x, 0.5, dims=[0], values=[0.0, 1.0, float("nan")])
    with pytest.raises(ValueError, match=r"alphas\[0\] must be a finite number, got inf"):
        m.edit(x, 0.5, torch.ones(3), [float("inf")])


def test_input_validation():
    m = tiny()
    m.set_phase(2)
    x = images()
    with pytest.raises(ValueError, match=r"beta must lie in \[0, B=1\]"):
        m.encode(x, 2.0)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        m.decode(torch.zeros(2, 3), float("inf"))
    with pytest.raises(ValueError, match="shape"):
        m.encode(torch.zeros(2, 3, 32, 32), 0.5)
    with pytest.raises(ValueError, match=r"direction must be a tensor of the latent's shape \(3,\), got \(4,\)"):
        m.edit(x, 0.5, torch.zeros(4), [1.0])
    # a numpy array of the right shape read "must be a tensor of the latent's shape (3,), got (3,)"
    with pytest.raises(TypeError, match=r"direction must be a torch tensor of the latent's shape \(3,\), got ndarray"):
        m.edit(x, 0.5, np.zeros(3, np.float32), [1.0])
    with pytest.raises(ValueError, match="alphas must be a non-empty sequence"):
        m.edit(x, 0.5, torch.zeros(3), [])
    with pytest.raises(ValueError, match="dims must be a non-empty list"):
        m.traverse(x, 0.5, dims=[3])
    with pytest.raises(ValueError, match="betas must be a non-empty sequence"):
        m.beta_sweep(x, [])
    with pytest.raises(ValueError, match="n must be a positive int"):
        m.sample(0)
    with pytest.raises(ValueError, match="phase must be 1, 2 or 3"):
        m.set_phase(4)
    with pytest.raises(ConfigError, match="adv_disc_weight"):
        tiny(phase=3)
    with pytest.raises(ConfigError, match="denoiser.num_steps"):
        MultiBetaConfig(vae=multibeta_config(num_steps=5).vae, denoiser=multibeta_config(num_steps=6).denoiser)
    with pytest.raises(ConfigError, match="latent shape"):
        MultiBetaConfig(vae=multibeta_config(latent_dim=4).vae, denoiser=multibeta_config(latent_dim=5).denoiser)
    with pytest.raises(ConfigError, match="representation_beta"):
        multibeta_config(representation_beta=1.5)
    sp = untrained_on_purpose(MultiBeta(multibeta_config(image_size=16, arch="resnet", latent="spatial", latent_channels=2, num_steps=3,
                                    vae=dict(model_channels=8, channel_mult=(1, 2), num_groups=4),
                                    unet=dict(model_channels=8, num_groups=4))))
    with pytest.raises(ValueError, match="needs a vector latent"):
        sp.traverse(torch.zeros(1, 3, 16, 16), 0.5)


def test_denoise_decode_with_one_beta_per_example():
    """denoise / denoise_decode with a tensor [B] of betas equal one scalar call per example (deterministic sampler)."""
    m = tiny(denoiser=dict(hidden=16, depth=1, sampler="deterministic"))
    m.set_phase(2)
    z = torch.randn(3, 3, generator=gen(5))
    betas = torch.tensor([1.0, 0.4, 0.0])
    out = m.denoise_decode(z, betas)
    lat = m.denoise(z, betas, torch.tensor([0.2, 0.0, 0.0]))
    for k in range(3):
        torch.testing.assert_close(out[k:k + 1], m.denoise_decode(z[k:k + 1], float(betas[k])), rtol=0, atol=1e-6)
        torch.testing.assert_close(lat[k:k + 1], m.denoise(z[k:k + 1], float(betas[k]), [0.2, 0.0, 0.0][k]),
                                   rtol=0, atol=1e-6)
    torch.testing.assert_close(out[2:], m.vae.decode(z[2:], 0.0))  # beta 0: decoded as is
    with pytest.raises(ValueError, match=r"beta_from must be a number or a tensor of shape \[3\]"):
        m.denoise_decode(z, torch.tensor([0.5, 0.2]))


def test_phase_3_perceptual_term_and_g_loss_values():
    """adv_perceptual_weight > 0 adds weight x mean LPIPS(x, rec) to the reconstruction term (LPIPS stubbed here by
    a known function: the real one needs a local weight file) and reports it; g_loss is -D(rec)."""
    m = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4, adv_perceptual_weight=0.25)
    m.set_phase(3)
    seen = []

    def stub(a, b):
        seen.append((a, b))
        return (a - b).pow(2).flatten(1).mean(1) * 3.0

    m.perceptual = stub
    x = images(4)
    out = m.loss(x, step=0, generator=gen(3))
    rec = phase3_reconstruction(m, x, 3)
    p = 3.0 * (x - rec).pow(2).mean()
    assert torch.equal(seen[0][0], x) and torch.allclose(seen[0][1], rec)
    assert float(out["lpips"]) == pytest.approx(float(p), rel=1e-5)
    g_loss = -m.discriminator(rec).mean()
    assert float(out["g_loss"]) == pytest.approx(float(g_loss), rel=1e-5)
    from diffrep.nn.vq import adaptive_weight

    rec_loss = (rec - x).abs().mean() + 0.25 * p
    lam = 0.5 * adaptive_weight(rec_loss, g_loss, m.vae.decoder.last_layer())
    assert float(out["loss"]) == pytest.approx(float(rec_loss + lam * g_loss), rel=1e-4)
    with pytest.raises(ValueError, match=r"MultiBeta\.loss: batch"):
        m.loss(torch.zeros(2, 3, 32, 32), step=0)
    with pytest.raises(ValueError, match=r"MultiBeta\.loss: batch"):
        m.loss(torch.zeros(2, 1, 16, 16), step=0)


def test_construction_follows_the_config():
    """No discriminator without adversarial weight; its width and depth from the config; a model built in phase 2
    has the VAE's sigma table installed as its schedule."""
    assert tiny().discriminator is None and tiny(adv_disc_weight=0.0).discriminator is None
    d = tiny(adv_disc_weight=0.5, disc_layers=2, disc_channels=4).discriminator
    convs = [c for c in d.net if isinstance(c, torch.nn.Conv2d)]
    assert convs[0].out_channels == 4 and len(convs) == 2 + 2
    m = untrained_on_purpose(MultiBeta(multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5, phase=2,
                                   vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})))
    assert int(m.denoiser.schedule_set) == 1
    torch.testing.assert_close(m.denoiser.sigma_table, m.vae.sigma_grid().detach())
    assert m.decode(torch.zeros(1, 3), torch.tensor([0.4])).shape == (1, 1, 32, 32)  # a one-element tensor beta


def test_config_errors_name_their_field():
    def field(**kw):
        with pytest.raises(ConfigError) as e:
            kw.pop("make")()
        return e.value.field, e.value.message

    f, msg = field(make=lambda: MultiBetaConfig(vae=multibeta_config(num_steps=5).vae,
                                                  denoiser=multibeta_config(num_steps=6).denoiser))
    assert f == "denoiser.num_steps" and "vae.num_steps=5" in msg
    f, msg = field(make=lambda: MultiBetaConfig(vae=multibeta_config(beta_max=1.0).vae,
                                                  denoiser=multibeta_config(beta_max=2.0).denoiser))
    assert f == "denoiser.beta_max" and "vae.beta_max=1.0" in msg
    f, msg = field(make=lambda: MultiBetaConfig(vae=multibeta_config(latent_dim=4).vae,
                                                  denoiser=multibeta_config(latent_dim=5).denoiser))
    assert f == "denoiser.latent" and "latent shape" in msg
    f, msg = field(make=lambda: multibeta_config(representation_beta=1.5))
    assert f == "representation_beta" and "[0, B=1.0]" in msg
    assert multibeta_config(representation_beta=1.0).representation_beta == 1.0
    f, msg = field(make=lambda: multibeta_config(phase=3))
    assert f == "phase" and "needs adv_disc_weight > 0" in msg
    f, msg = field(make=lambda: multibeta_config(image_size=32, adv_disc_weight=0.5, disc_layers=5))
    assert f == "disc_layers" and "no output patch for 32px" in msg
    from diffrep.nn.vq import PatchDiscriminator

    res24 = dict(image_size=24, arch="resnet", vae=dict(model_channels=8, channel_mult=(1, 2), num_groups=4))
    assert PatchDiscriminator.output_size(24, 3) == 1  # one output patch: the edge that still fits
    assert multibeta_config(adv_disc_weight=0.5, disc_layers=3, **res24).disc_layers == 3
    f, _ = field(make=lambda: multibeta_config(adv_disc_weight=1.5, disc_layers=4, **res24))
    assert f == "disc_layers"
    f, msg = field(make=lambda: multibeta_config(image_size=8, arch="resnet", adv_perceptual_weight=0.5,
                                                 vae=dict(model_channels=8, channel_mult=(1, 2), num_groups=4)))
    assert f == "adv_perceptual_weight" and msg == "LPIPS needs images of at least 16x16"
    assert multibeta_config(image_size=16, arch="resnet", adv_perceptual_weight=0.5,
                            vae=dict(model_channels=8, channel_mult=(1, 2), num_groups=4)).adv_perceptual_weight == 0.5
    assert multibeta_config(image_size=8, arch="resnet", adv_perceptual_weight=0.0,
                            vae=dict(model_channels=8, channel_mult=(1, 2), num_groups=4)).adv_perceptual_weight == 0.0


def test_multibeta_config_defaults_and_spatial_unet():
    c = multibeta_config()
    assert (c.vae.image_size, c.vae.in_channels, c.vae.latent_dim, c.vae.num_steps, c.vae.beta_max) == (64, 3, 10, 1000, 1.0)
    assert (c.vae.arch, c.vae.latent, c.vae.latent_channels, c.denoiser.latent_channels) == ("conv", "vector", 4, 4)
    sp = multibeta_config(image_size=32, arch="resnet", latent="spatial", latent_channels=2,
                          vae=dict(model_channels=8, channel_mult=(1, 2, 2), num_groups=4))
    u = sp.denoiser.unet
    assert sp.vae.latent_shape == (2, 8, 8) and sp.denoiser.latent_size == 8 == u.image_size
    assert (u.model_channels, u.channel_mult, u.num_res_blocks, u.attention_resolutions, u.num_groups, u.num_outputs) == \
        (64, (1, 2), 2, (), 32, 2)
    assert multibeta_config(image_size=32, arch="resnet", latent="spatial", latent_channels=2,
                            vae=dict(model_channels=8, channel_mult=(1, 2, 2), num_groups=4),
                            unet=dict(model_channels=16, num_groups=8)).denoiser.unet.model_channels == 16


def test_phase_2_checks_its_batch_once_and_reads_any_float_dtype():
    """Phase 2 encodes the 2B pairs with the unchecked encoder pass (MultiBetaVAE._encode_checked_images): MultiBeta.loss
    is then the only check of the batch, and the encoder still gets the module's dtype."""
    m = tiny()
    m.set_phase(2)
    x = images()
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^MultiBeta.loss: batch holds NaN or infinite values$"):
        m.loss(bad, step=0)
    want = m.loss(x, step=0, generator=gen(2))
    got = m.loss(x.double(), step=0, generator=gen(2))  # float32 values held in float64: the same numbers
    for k in ("loss", "eps_mse", "delta_mse"):
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    # MultiBetaVAE.encode casts its images to the module's dtype too
    torch.testing.assert_close(m.vae.encode(x.double(), 0.5), m.vae.encode(x, 0.5), rtol=0, atol=0)


def test_sample_beta_and_denoiser_step_check_their_arguments():
    m = tiny()
    m.set_phase(2)  # installs the denoiser's schedule
    vae, den = m.vae, m.denoiser
    z = torch.zeros(2, *den.config.latent_shape)
    for f in (lambda: vae.sample_beta(3, generator=7), lambda: den.step(z, 1, generator=7),
              lambda: den.loss(images(), encoder=vae.encode, generator=7)):
        with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got int$"):
            f()
    with pytest.raises(ValueError, match=r"^n must be a positive int, got 0$"):
        vae.sample_beta(0)
    with pytest.raises(ValueError, match=rf"^step: i must lie in 1..N={den.config.num_steps} \(an int\), got True$"):
        den.step(z, True)
    with pytest.raises(ValueError, match=r"^LatentDenoiser.step: z must have shape \[B, 3\], got \(2, 5\)$"):
        den.step(torch.zeros(2, 5), 1)
    for xi in ([0.0] * 3, torch.zeros(2, 4)):  # a list is named, not an AttributeError at xi.shape
        with pytest.raises(ValueError, match=r"^step: xi must have shape \(2, 3\)$"):
            den.step(z, 1, xi=xi)
    assert vae.sample_beta(4, generator=gen()).dtype == vae.log_s2_table.dtype
    # step's draw comes from the generator given: the same seed, the same step
    torch.testing.assert_close(den.step(z, 2, generator=gen(5)), den.step(z, 2, generator=gen(5)), rtol=0, atol=0)
