"""Trainer with a two-optimiser model (VQ-GAN): parameter split, disc_start gating, learning, exact resume."""

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from diffrep.nn.pretrained import load_safetensors_checked
from diffrep.nn.vq import VQAutoencoder
from diffrep.train import TrainConfig, Trainer
from diffrep.train.checkpoint import STATE_NAME
from helpers import tiny_vq


def _model(**kw):
    torch.manual_seed(0)
    base = dict(image_size=8, disc_weight=0.75, disc_start=0, disc_channels=8, disc_layers=1)
    return VQAutoencoder(tiny_vq(**{**base, **kw}))


def _data(n=32):
    """Random 8x8 images: a fixed colour plus random 2x2 blocks (upsampled) plus noise, clipped to [-1, 1]
    (the image range VQAutoencoder.loss checks)."""
    g = torch.Generator().manual_seed(0)
    low = 0.3 * (torch.rand(n, 3, 2, 2, generator=g) * 2 - 1)
    x = torch.tensor([0.6, -0.4, 0.2]).view(1, 3, 1, 1) + low.repeat_interleave(4, -1).repeat_interleave(4, -2)
    return TensorDataset((x + 0.05 * torch.randn(n, 3, 8, 8, generator=g)).clamp(-1, 1))


def _cfg(steps, **kw):
    base = dict(steps=steps, batch_size=8, lr=1e-3, betas=(0.5, 0.9), ema_decay=0.0, log_every=1, ckpt_every=0,
                device="cpu", mixed_precision="no", seed=0)
    return TrainConfig(**{**base, **kw})


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_training_reduces_reconstruction_and_splits_optimizers(tmp_path):
    model = _model()
    start = _params(model)
    hist = Trainer(model, _data(), _cfg(40), tmp_path).train()
    rec = [h["rec"] for h in hist]
    assert sum(rec[-5:]) / 5 < 0.8 * sum(rec[:5]) / 5, rec
    assert all("disc_loss" in h and "g_loss" in h and "disc_grad_norm" in h for h in hist)
    end = _params(model)
    assert all(not torch.equal(start[n], end[n]) for n in end if n.startswith("discriminator.net.0."))
    state = torch.load(tmp_path / "checkpoints" / "step-00000040" / STATE_NAME, weights_only=True)
    n_disc = len(model.discriminator_parameters())
    n_gen = len(list(model.parameters())) - n_disc
    assert len(state["disc_optimizer"]["param_groups"][0]["params"]) == n_disc
    assert len(state["optimizer"]["param_groups"][0]["params"]) == n_gen


def test_disc_start_gates_discriminator_updates(tmp_path):
    model = _model(disc_start=100)
    start = _params(model)
    hist = Trainer(model, _data(), _cfg(4), tmp_path).train()
    end = _params(model)
    disc = {n for n in end if n.startswith("discriminator.")}
    assert disc and all(torch.equal(start[n], end[n]) for n in disc)
    assert any(not torch.equal(start[n], end[n]) for n in end if n not in disc)
    assert all(h["disc_loss"] == 0.0 and "g_loss" not in h for h in hist)


def test_resume_with_two_optimizers_is_exact(tmp_path):
    ref = Trainer(_model(), _data(), _cfg(6, ckpt_every=3), tmp_path / "a").train()
    b = Trainer(_model(), _data(), _cfg(6), tmp_path / "b")
    hist = b.train(resume=tmp_path / "a" / "checkpoints" / "step-00000003")
    assert [(h["step"], h["loss"], h["disc_loss"]) for h in hist] == [(h["step"], h["loss"], h["disc_loss"]) for h in ref[3:]]
    wa = load_safetensors_checked(Path(tmp_path / "a" / "final" / "model.safetensors"))
    wb = load_safetensors_checked(Path(tmp_path / "b" / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class _NoDiscLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.g, self.d = nn.Linear(2, 1), nn.Linear(2, 1)

    def discriminator_parameters(self):
        return list(self.d.parameters())

    def loss(self, batch, step=None):
        return {"loss": self.g(batch[0]).pow(2).mean()}


def test_two_optimizer_model_must_return_disc_loss(tmp_path):
    with pytest.raises(TypeError, match="disc_loss"):
        Trainer(_NoDiscLoss(), TensorDataset(torch.randn(8, 2)), _cfg(1), tmp_path).train()
