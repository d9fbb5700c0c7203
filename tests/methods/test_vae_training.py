"""The VAE baselines through the trainer: FactorVAE's discriminator gets its own Adam (lr, betas) via
the two-optimiser path; the second optimiser's settings are checked; save/load after training."""

import pytest
import torch
from torch.utils.data import TensorDataset

from diffrep.methods.vae import VAE, FactorVAE
from diffrep.nn.pretrained import load_pretrained
from diffrep.train import TrainConfig, Trainer
from diffrep.train.checkpoint import STATE_NAME
from helpers import TwoOptimiserModel


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    return TensorDataset((torch.rand(n, 1, 32, 32, generator=g) > 0.8).float() * 2 - 1)


def _cfg(steps, **kw):
    base = dict(steps=steps, batch_size=8, lr=1e-3, ema_decay=0.0, log_every=1, ckpt_every=0, device="cpu",
                mixed_precision="no", seed=0, grad_clip=0.0)
    return TrainConfig(**{**base, **kw})


def test_factor_vae_trains_with_its_own_discriminator_optimizer(tmp_path):
    torch.manual_seed(0)
    model = FactorVAE(FactorVAE.config_class(image_size=32, latent_dim=3, disc_hidden=8, disc_layers=2,
                                             disc_lr=3e-4, disc_betas=(0.5, 0.9)))
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    hist = Trainer(model, _data(), _cfg(3, warmup_steps=2), tmp_path).train()
    assert all(k in hist[-1] for k in ("loss", "disc_loss", "tc", "recon", "kl", "disc_accuracy"))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))
    state = torch.load(tmp_path / "checkpoints" / "step-00000003" / STATE_NAME, weights_only=True)
    dg, g = state["disc_optimizer"]["param_groups"][0], state["optimizer"]["param_groups"][0]
    assert tuple(dg["betas"]) == (0.5, 0.9) and tuple(g["betas"]) == (0.9, 0.999)
    # the last step (index 2) is past the warm-up: the base rates, each optimiser its own
    assert dg["lr"] == pytest.approx(3e-4) and g["lr"] == pytest.approx(1e-3)
    assert len(dg["params"]) == len(model.discriminator_parameters())
    loaded = load_pretrained(tmp_path / "final")
    x = _data()[:4][0]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), model.encode(x))


def test_disc_learning_rate_follows_the_warmup_shape(tmp_path):
    torch.manual_seed(0)
    model = FactorVAE(FactorVAE.config_class(image_size=32, latent_dim=3, disc_hidden=8, disc_layers=1, disc_lr=2e-4))
    Trainer(model, _data(), _cfg(1, warmup_steps=4), tmp_path).train()
    state = torch.load(tmp_path / "checkpoints" / "step-00000001" / STATE_NAME, weights_only=True)
    assert state["disc_optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 4)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 4)




@pytest.mark.parametrize("settings, match", [({"momentum": 0.9}, "keys"), ({"lr": 0.0}, "lr"),
                                             ({"betas": (0.5, 1.0)}, "betas"), ({"eps": 0.0}, "eps")])
def test_bad_discriminator_settings_are_refused(settings, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        Trainer(TwoOptimiserModel(settings), TensorDataset(torch.randn(8, 2)), _cfg(1), tmp_path).train()


def test_vae_trains_and_reconstruction_improves(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAE.config_class(image_size=32, latent_dim=3))
    hist = Trainer(model, _data(), _cfg(20, lr=1e-3), tmp_path).train()  # 12 steps at 3e-3 spiked with dlib's 2x2 convs
    last = sum(h["recon"] for h in hist[-4:]) / 4
    assert last < 0.8 * hist[0]["recon"], [h["recon"] for h in hist]
