"""Trainer features of issue 23: gradient accumulation, fp16 + GradScaler, exact resume of both, the start
banner, inexact resume across world sizes, periodic evaluation, TensorBoard / W&B mirrors."""

import json
import re
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from diffrep.train import TrainConfig, Trainer
from diffrep.train.checkpoint import MANIFEST_NAME, STATE_NAME, _sha256, list_checkpoints
from diffrep.train.evaluation import PeriodicEvaluation, metric_preset
from diffrep.train.loggers import format_eta


def _cfg(steps, **kw):
    return TrainConfig(**{**dict(steps=steps, batch_size=8, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0,
                                 device="cpu", seed=0, grad_clip=0.0), **kw})


class _MLP(nn.Module):
    """Per-example mean loss plus a noise term drawn from the global RNG (so resume must restore it)."""

    def __init__(self, noise: float = 0.0):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        self.noise = noise
        self.sizes: list[int] = []
        self.dtypes: list[torch.dtype] = []

    def loss(self, batch, *, step, generator=None):
        x, y = batch
        self.sizes.append(len(x))
        out = self.net(x + self.noise * torch.randn_like(x))
        self.dtypes.append(out.dtype)
        return {"loss": (out.float().squeeze(1) - y).pow(2).mean()}


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, x.sum(1).sin())


def _weights(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_accumulation_matches_the_full_batch_and_splits_it(tmp_path):
    # SGD-equivalent check: AdamW on the accumulated gradient of 2 x 4 examples = on the gradient of 8
    full, acc = _MLP(), _MLP()
    h1 = Trainer(full, _data(), _cfg(6), tmp_path / "a").train()
    h2 = Trainer(acc, _data(), _cfg(6, grad_accum_steps=2), tmp_path / "b").train()
    assert full.sizes == [8] * 6 and acc.sizes == [4] * 12
    assert torch.allclose(_weights(full), _weights(acc), atol=1e-5, rtol=0)
    for r1, r2 in zip(h1, h2):  # the logged loss is the mean over the micro-batches = the full-batch loss
        assert r1["loss"] == pytest.approx(r2["loss"], rel=1e-5)


def test_accumulation_needs_a_divisible_batch():
    with pytest.raises(ValueError, match="grad_accum_steps"):
        _cfg(2, batch_size=8, grad_accum_steps=3)


@pytest.mark.parametrize("precision,accum", [("no", 2), ("fp16", 1), ("fp16", 2)])
def test_resume_is_bit_exact_with_accumulation_and_fp16(tmp_path, precision, accum):
    cfg = dict(grad_accum_steps=accum, mixed_precision=precision, ckpt_every=3)
    ref = _MLP(noise=0.1)
    h_ref = Trainer(ref, _data(), _cfg(6, **cfg), tmp_path / "ref").train()
    first = _MLP(noise=0.1)
    Trainer(first, _data(), _cfg(3, **cfg), tmp_path / "run").train()
    second = _MLP(noise=0.1)
    h = Trainer(second, _data(), _cfg(6, **cfg), tmp_path / "run").train(resume="latest")
    assert torch.equal(_weights(ref), _weights(second))
    assert [r["loss"] for r in h_ref[3:]] == [r["loss"] for r in h]
    if precision == "fp16":
        assert set(ref.dtypes) == {torch.float16}  # the forward ran under float16 autocast
        state = torch.load(list_checkpoints(tmp_path / "run" / "checkpoints")[-1][1] / STATE_NAME, weights_only=True)
        assert state["grad_scaler"]["scale"] == h[-1]["loss_scale"] > 0
        assert h_ref[-1]["loss_scale"] == h[-1]["loss_scale"]


def test_fp16_loss_scale_skips_overflowing_steps(tmp_path):
    class Overflow(_MLP):
        def loss(self, batch, *, step, generator=None):
            out = super().loss(batch, step=step)
            return {"loss": out["loss"] * (1e4 if step == 0 else 1.0)}  # huge gradients at step 0 overflow fp16

    m = Overflow()
    before = _weights(m).clone()
    h = Trainer(m, _data(), _cfg(1, mixed_precision="fp16"), tmp_path).train()
    assert h[0]["loss_scale"] == 65536.0 * 0.5  # GradScaler halves its initial 2^16 scale on inf gradients
    assert torch.equal(before, _weights(m))  # and skips the optimiser step


def _rewrite_world_size(ckpt, world_size):
    state = torch.load(ckpt / STATE_NAME, weights_only=True)
    state["world_size"] = world_size
    state["rng"] = state["rng"] * world_size
    torch.save(state, ckpt / STATE_NAME)
    manifest = json.loads((ckpt / MANIFEST_NAME).read_text())
    f = ckpt / STATE_NAME
    manifest["files"][STATE_NAME] = {"size": f.stat().st_size, "sha256": _sha256(f)}
    (ckpt / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_banner_resume_message_and_inexact_resume(tmp_path, capsys):
    Trainer(_MLP(), _data(), _cfg(3, ckpt_every=3), tmp_path, name="test/mlp").train()
    err = capsys.readouterr().err
    n = sum(p.numel() for p in _MLP().parameters())
    assert "diffrep train test/mlp" in err and f"{n:,} parameters" in err and "dtype float32" in err
    assert f"{torch.get_num_threads()} CPU thread" in err and "resume     none" in err and str(tmp_path) in err
    assert re.search(r"step 3/3 .*it/s, ETA 0:00\)", err)  # the plain progress line (stderr is not a terminal)
    _rewrite_world_size(list_checkpoints(tmp_path / "checkpoints")[-1][1], 2)
    with pytest.raises(ValueError, match="written by 2 ranks.*resume-inexact"):
        Trainer(_MLP(), _data(), _cfg(5), tmp_path).train(resume="latest")
    m = _MLP()
    h = Trainer(m, _data(), _cfg(5), tmp_path).train(resume="latest", resume_inexact=True)
    err = capsys.readouterr().err
    assert "resuming from step 3 of 5" in err and "resume     step 3" in err and "written by 2 ranks" in err
    assert [r["step"] for r in h] == [4, 5]


def test_periodic_evaluation_logs_without_changing_the_run(tmp_path):
    seen = []

    def probe(model):
        seen.append(_weights(model).clone())
        torch.randn(100)  # uses the global RNG: must not perturb training
        return {"wsum": float(_weights(model).sum())}

    plain, evald = _MLP(noise=0.1), _MLP(noise=0.1)
    h_plain = Trainer(plain, _data(), _cfg(4), tmp_path / "a").train()
    h = Trainer(evald, _data(), _cfg(4), tmp_path / "b", callbacks=[PeriodicEvaluation(2, {"probe": probe})]).train()
    assert torch.equal(_weights(plain), _weights(evald))
    evals = [r for r in h if "eval/probe/wsum" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert evals[-1]["eval/probe/wsum"] == pytest.approx(float(_weights(evald).sum()))
    assert [r["loss"] for r in h if "loss" in r] == [r["loss"] for r in h_plain]
    lines = [json.loads(ln) for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if "eval/probe/wsum" in ln] == [2, 4]


def test_fast_preset_scores_a_perfect_encoder():
    from diffrep.data.base import ArrayGroundTruthData

    sizes = (4, 3)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, 2)
    images = np.zeros((len(grid), 4, 4, 1), np.float32)
    images[:, 0, 0, 0] = grid[:, 0] / 3
    images[:, 0, 1, 0] = grid[:, 1] / 2
    ds = ArrayGroundTruthData(images, ["a", "b"], sizes)

    class PixelEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def encode(self, x):  # the two informative pixels: a perfect, axis-aligned code
            return x[:, 0, 0, :2]

    from diffrep.metrics.mig import mig
    from diffrep.metrics.sap import sap

    fn = metric_preset("fast", ds, _cfg(1, eval_num_samples=600, seed=7))
    scores = fn(PixelEncoder())
    assert scores["mig"] > 0.99  # a perfect code: MI gap = H(factor)
    # the same rows by hand: RandomState(seed) factor draw, codes = the pixels scaled to [-1, 1], 2/3 train
    f = ds.sample_factors(600, np.random.RandomState(7))
    c = np.stack([f[:, 0] / 3, f[:, 1] / 2], 1) * 2 - 1
    assert scores["mig"] == pytest.approx(mig(c, f)["mig"], abs=1e-9)
    assert scores["sap"] == pytest.approx(sap(c[:400], f[:400], c[400:], f[400:])["sap"], abs=1e-9)
    with pytest.raises(ValueError, match="ground-truth"):
        metric_preset("fast", _data(), _cfg(1))


def test_fid_preset_scores_samples_against_a_seeded_draw_of_training_images(monkeypatch):
    from diffrep.metrics import generation

    # Inception replaced by a known feature map (the pixels), so the preset's wiring is checked exactly
    calls = []

    def features(source, *, num_samples=None, seed=0, progress=True, **kw):
        x = source.sample(num_samples, generator=torch.Generator().manual_seed(seed)) if hasattr(source, "sample") else source
        calls.append(len(x))
        return x.reshape(len(x), -1).double().numpy()

    monkeypatch.setattr(generation, "inception_features", features)
    data = torch.linspace(-1, 1, 40 * 4).reshape(40, 1, 2, 2)
    ds = torch.utils.data.TensorDataset(data, torch.zeros(40))

    class Sampler(nn.Module):
        def __init__(self, shift):
            super().__init__()
            self.shift = shift

        def sample(self, n, *, generator=None):
            return data[torch.randperm(40, generator=generator)[:n]] + self.shift

    fn = metric_preset("fid", ds, _cfg(1, eval_num_samples=12, seed=3))
    idx = np.random.RandomState(3).choice(40, size=12, replace=False)
    real = data[idx].reshape(12, -1).double().numpy()
    fake = (data[torch.randperm(40, generator=torch.Generator().manual_seed(3))[:12]] + 0.5).reshape(12, -1).double().numpy()
    assert fn(Sampler(0.5))["fid"] == pytest.approx(generation.fid_from_features(real, fake, allow_singular=True), rel=1e-9)
    fn(Sampler(0.0))
    assert calls == [12, 12, 12]  # the real features once, then one fake set per evaluation
    with pytest.raises(TypeError, match="no sample"):
        fn(nn.Linear(1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        metric_preset("fid", torch.utils.data.TensorDataset(data[:1]), _cfg(1, eval_num_samples=12))


def test_tensorboard_and_wandb_mirrors(tmp_path, monkeypatch):
    calls = []

    class Writer:
        def __init__(self, logdir):
            calls.append(("tb", logdir))

        def add_scalar(self, k, v, step):
            calls.append(("scalar", k, step))

        def add_text(self, tag, text, step):
            calls.append(("text", tag))

        def add_image(self, tag, arr, step, dataformats):
            calls.append(("image", tag, arr.shape, step))

        def add_hparams(self, h, m, run_name):
            calls.append(("hparams", h["steps"], sorted(m)))

        def close(self):
            calls.append(("close",))

    fake_wandb = types.SimpleNamespace(
        init=lambda **kw: calls.append(("wandb.init", kw["mode"], kw["project"])),
        log=lambda d, step: calls.append(("wandb.log", sorted(d), step)),
        Image=lambda arr: ("img", arr.shape), finish=lambda: calls.append(("wandb.finish",)))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb)

    class Sampler(_MLP):
        def sample(self, n, *, generator=None):
            return torch.zeros(n, 1, 4, 4)

    Trainer(Sampler(), _data(), _cfg(2, tensorboard=True, wandb=True, sample_every=2, num_samples=4), tmp_path).train()
    assert ("scalar", "loss", 1) in calls and ("scalar", "loss", 2) in calls
    assert ("hparams", 2, ["hparam/loss", "hparam/lr"]) in calls and ("text", "hparams") in calls
    assert any(c[0] == "image" and c[1] == "samples" and c[3] == 2 for c in calls)
    assert ("wandb.init", "offline", "diffrep") in calls and ("wandb.log", ["loss", "lr"], 1) in calls
    assert ("wandb.log", ["samples"], 2) in calls and calls[-1] == ("wandb.finish",)


def test_missing_logger_packages_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImportError, match="'wandb' package"):
        Trainer(_MLP(), _data(), _cfg(1, wandb=True), tmp_path).train()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="'tensorboard' package"):
        Trainer(_MLP(), _data(), _cfg(1, tensorboard=True), tmp_path / "b").train()


def test_eta_format():
    assert format_eta(65) == "1:05" and format_eta(3725) == "1:02:05" and format_eta(float("inf")) == "?"


def test_overwrite_clears_wandb_run_folders_only(tmp_path):
    from diffrep.train.rundir import clear_run, run_contents

    Trainer(_MLP(), _data(), _cfg(1), tmp_path).train()
    wb = tmp_path / "wandb"
    (wb / "offline-run-20261206_120000-abc123" / "files").mkdir(parents=True)
    (wb / "latest-run").symlink_to(wb / "offline-run-20261206_120000-abc123")
    (wb / "mine.txt").write_text("user file")
    assert "wandb/" in run_contents(tmp_path)
    removed = clear_run(tmp_path)
    assert "wandb/offline-run-20261206_120000-abc123" in removed and "wandb/latest-run" in removed
    assert (wb / "mine.txt").is_file() and not (wb / "latest-run").exists()


def test_periodic_evaluation_uses_the_ema_weights_runs_at_the_last_step_and_only_on_rank_0(tmp_path):
    seen = []
    probe = PeriodicEvaluation(2, {"w": lambda m: (seen.append(_weights(m).clone()), {"s": 0.0})[1]})
    m = _MLP()
    Trainer(m, _data(), _cfg(3, ema_decay=0.5, ema_warmup=False), tmp_path, callbacks=[probe]).train()
    assert len(seen) == 2  # step 2 and the last step, 3
    from safetensors.torch import load_file

    ema = load_file(str(tmp_path / "checkpoints" / "step-00000003" / "ema.safetensors"))
    assert torch.equal(seen[-1], torch.cat([ema[k].flatten() for k, _ in m.named_parameters()]))
    assert not torch.equal(seen[-1], _weights(m))  # the EMA copy, not the raw weights
    other = types.SimpleNamespace(config=types.SimpleNamespace(steps=4), rank=1, model=m)
    assert probe(other, 2, {}) is None  # ranks > 0 do not evaluate
