"""Contract of issue 6 (training platform and shared building blocks), called by the paths the issue gives.

One test per item the issue names: the building blocks of ``diffrep.nn`` / ``diffrep.diffusion``, the
``config.json`` + ``model.safetensors`` save/load contract, the trainer of ``diffrep.train``, the ``diffrep``
subcommands and configs, ``diffrep.viz`` and the reliability items. Values are checked against closed forms
written here; where a deeper value test already exists its file is named in a comment. Issue 16 moved no
name of this issue (``diffrep.train.EpochBatchSampler`` / ``epoch_permutation`` are re-exports of
``diffrep.data.sampling``, checked below)."""

import inspect
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import break_zero_init, tiny_unet, tiny_vq


# -- building blocks: the ADM U-Net ------------------------------------------------------------------------------
def test_unet_config_names_every_knob_the_issue_lists():
    """Base channels, multipliers, res blocks per level, attention resolutions and heads, dropout, the latent
    AdaGN, cross-attention tokens, Skip Dropout at chosen resolutions, a second output head."""
    from diffrep.nn import UNet, UNetConfig

    fields = {f for f in UNetConfig.__dataclass_fields__}
    assert {"model_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "num_heads", "dropout",
            "use_scale_shift_norm", "latent_dim", "latent_cond", "context_dim", "skip_dropout",
            "skip_dropout_resolutions", "num_outputs"} <= fields
    d = UNetConfig()
    assert (d.use_scale_shift_norm, d.latent_dim, d.context_dim, d.skip_dropout, d.num_outputs) == (True, 0, 0, 0.0, 1)
    assert list(inspect.signature(UNet.forward).parameters) == ["self", "x", "t", "z", "context"]


def test_sinusoidal_time_embedding_closed_form():
    """[cos(t w_i), sin(t w_i)], w_i = 10000^(-i/half) (ADM; Vaswani et al. 2017)."""
    from diffrep.nn import timestep_embedding

    t = torch.tensor([0.0, 3.0, 917.0])
    dim, half = 8, 4
    w = torch.tensor([10000.0 ** (-i / half) for i in range(half)], dtype=torch.float64)
    want = torch.cat([torch.cos(t.double()[:, None] * w), torch.sin(t.double()[:, None] * w)], 1)
    assert torch.allclose(timestep_embedding(t, dim).double(), want, atol=2e-4)


@pytest.mark.parametrize("preset,count", [("ddpm-cifar10", 35_746_307), ("ddpm-celebahq256", 113_673_219)])
def test_published_parameter_counts(preset, count):
    """Ho et al. 2020 App. B (35.7M / 114M), equal to the converted google/ddpm-cifar10-32 and
    google/ddpm-celebahq-256 checkpoints; counted on the meta device (no memory). tests/nn/test_unet.py too."""
    from diffrep.nn import UNET_PRESETS, UNet, unet_preset

    assert preset in UNET_PRESETS
    with torch.device("meta"):
        m = UNet(unet_preset(preset))
    assert sum(p.numel() for p in m.parameters()) == count


def test_unet_conditioning_paths_and_second_head():
    """Time AdaGN, a latent through a second AdaGN, cross-attention on context tokens, and num_outputs=2."""
    from diffrep.nn import UNet

    torch.manual_seed(0)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 500])
    lat = break_zero_init(UNet(tiny_unet(latent_dim=5)))
    z = torch.randn(2, 5)
    assert lat(x, t, z=z).shape == (2, 3, 8, 8)
    assert not torch.allclose(lat(x, t, z=z), lat(x, t, z=z + 1))            # z reaches the output
    assert not torch.allclose(lat(x, t, z=z), lat(x, torch.tensor([2, 900]), z=z))  # t reaches the output
    xat = break_zero_init(UNet(tiny_unet(context_dim=6, attention_resolutions=(4,), num_heads=2)))
    c = torch.randn(2, 3, 6)  # three context tokens
    assert not torch.allclose(xat(x, t, context=c), xat(x, t, context=c.flip(1) * 2))
    two = UNet(tiny_unet(num_outputs=2))
    a, b = two(x, t)
    assert a.shape == b.shape == (2, 3, 8, 8)


def test_skip_dropout_sits_on_the_chosen_decoder_resolutions():
    """DyGA Eq. 7: Skip Dropout on the decoder skips of the chosen resolutions only; identity in eval mode."""
    from diffrep.nn import SkipDropout, UNet

    m = UNet(tiny_unet(image_size=16, channel_mult=(1, 2, 2), skip_dropout=0.5, skip_dropout_placement="explicit",
                       skip_dropout_resolutions=(8,)))
    # decoder blocks per level: num_res_blocks + 1 = 2; levels from the bottom: 4, 8, 16 px
    kinds = [isinstance(s, SkipDropout) for s in m.skip_dropouts]
    assert kinds == [False, False, True, True, False, False]
    s = torch.ones(4, 6, 2, 2)
    drop = SkipDropout(0.5)
    drop.train()
    out = drop(s)
    assert set(out.unique().tolist()) <= {0.0, 2.0}  # kept channels rescaled by 1 / (1 - rate)
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))  # one draw per (sample, channel)
    drop.eval()
    assert torch.equal(drop(s), s)


def test_attention_at_a_missing_resolution_names_the_field():
    from diffrep.config import ConfigError
    from diffrep.nn import UNetConfig

    with pytest.raises(ConfigError, match="attention_resolutions"):
        UNetConfig(image_size=32, channel_mult=(1, 2), attention_resolutions=(4,))


# -- Half-U-Net, conv VAE nets, DyGA extractor, VQ autoencoder ----------------------------------------------------
def test_half_unet_softplus_then_square_and_bias_free():
    """Down + middle blocks and two MLP heads; variance = softplus(a)^2 (logvar = 2 log softplus(a)); bias-free."""
    from diffrep.nn import HalfUNet, HalfUNetConfig

    torch.manual_seed(0)
    m = HalfUNet(HalfUNetConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, latent_dim=3,
                                num_groups=4, bias=False))
    assert not [n for n, _ in m.named_parameters() if n.endswith("bias")]
    raw = {}
    m.var_head.register_forward_hook(lambda mod, i, o: raw.setdefault("a", o))
    mean, logvar = m(torch.randn(2, 3, 8, 8))
    assert mean.shape == logvar.shape == (2, 3)
    assert torch.allclose(logvar.exp(), torch.log1p(raw["a"].exp()) ** 2, rtol=1e-5)
    assert HalfUNetConfig().variance_head == "softplus_sq"


@pytest.mark.parametrize("size", [32, 64])
def test_conv_vae_encoder_decoder_for_32_and_64(size):
    from diffrep.nn import ConvDecoder, ConvEncoder, ConvVAEConfig

    cfg = ConvVAEConfig(image_size=size, in_channels=1, latent_dim=4)
    mean, logvar = ConvEncoder(cfg)(torch.randn(2, 1, size, size))
    assert mean.shape == logvar.shape == (2, 4)
    assert ConvDecoder(cfg)(mean).shape == (2, 1, size, size)


def test_dyga_feature_extractor_table9_with_per_unit_mlps():
    """DyGA Table 9: scalars [B, N] and tokens [B, N, 32]; each unit's MLP reads only its own scalar."""
    from diffrep.nn import FeatureExtractor, FeatureExtractorConfig, PerUnitMLP

    torch.manual_seed(0)
    fe = FeatureExtractor(FeatureExtractorConfig(num_units=3)).eval()
    s, tok = fe(torch.randn(2, 3, 64, 64))
    assert s.shape == (2, 3) and tok.shape == (2, 3, 32)
    mlp = PerUnitMLP(3, (1, 4, 2), final_act=False)
    x = torch.randn(5, 3)
    out = mlp(x)
    for n in range(3):  # unit n by hand: relu(x_n W0[n] + b0[n]) W1[n] + b1[n]
        h = torch.relu(x[:, n:n + 1] @ mlp.weights[0][n] + mlp.biases[0][n])
        assert torch.allclose(out[:, n], h @ mlp.weights[1][n] + mlp.biases[1][n], atol=1e-6)


def test_vq_autoencoder_f4_with_codebook_and_losses():
    from diffrep.nn import VQAutoencoder, VQAutoencoderConfig

    assert VQAutoencoderConfig().downsample_factor == 4  # the default ch_mult (1, 2, 4): f = 4
    torch.manual_seed(0)
    m = VQAutoencoder(tiny_vq())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = m.encode(x)
    assert z.shape == (2, m.config.embed_dim, 4, 4)
    zq = m.decode(z)
    assert zq.shape == x.shape
    out = m.loss(x, step=0)
    assert "loss" in out and out["loss"].dim() == 0 and torch.isfinite(out["loss"])


# -- schedules and samplers ----------------------------------------------------------------------------------------
def test_linear_and_cosine_schedules_closed_forms():
    from diffrep.diffusion import NoiseSchedule

    lin = NoiseSchedule(kind="linear", num_timesteps=10, beta_start=1e-4, beta_end=0.02)
    betas = [1e-4 + (0.02 - 1e-4) * i / 9 for i in range(10)]
    assert torch.allclose(lin.alphas_cumprod, torch.tensor(np.cumprod([1 - b for b in betas])), atol=1e-15)
    cos = NoiseSchedule(kind="cosine", num_timesteps=10)

    def f(t):  # Nichol & Dhariwal 2021 Eq. 17
        return math.cos((t / 10 + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - f(t + 1) / f(t), 0.999) for t in range(10)]  # clipped at max_beta (the last one is)
    assert betas[-1] == 0.999
    assert torch.allclose(cos.alphas_cumprod, torch.tensor(np.cumprod([1 - b for b in betas])), atol=1e-12)


def test_conversions_between_eps_x0_and_score():
    from diffrep.diffusion import NoiseSchedule

    s = NoiseSchedule(kind="linear", num_timesteps=50)
    t = torch.tensor([0, 17, 49])
    x0, eps = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ab = s.alphas_cumprod[t][:, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    assert torch.allclose(s.q_sample(x0, t, noise=eps), xt)
    assert torch.allclose(s.eps_to_x0(xt, t, eps), x0)
    assert torch.allclose(s.x0_to_eps(xt, t, x0), eps)
    assert torch.allclose(s.eps_to_score(xt, t, eps), -eps / (1 - ab).sqrt())
    assert torch.allclose(s.score_to_eps(xt, t, -eps / (1 - ab).sqrt()), eps)


def test_ddpm_and_ddim_steps_are_stateless_with_per_sample_t():
    """A batch stepped with one t per sample equals each sample stepped alone (no state between calls);
    the DDPM posterior is Ho et al. 2020 Eq. 7 and DDIM with eta = 0 is Song et al. 2021 Eq. 12."""
    from diffrep.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule

    s = NoiseSchedule(kind="linear", num_timesteps=20, beta_start=1e-3, beta_end=0.2)
    xt, eps, noise = (torch.randn(3, 2, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([19, 7, 0])
    ddpm = DDPMSampler(s)
    out = ddpm.step(eps, t, xt, noise=noise)
    for b in range(3):
        tb = int(t[b])
        ab, beta = s.alphas_cumprod[tb], s.betas[tb]
        ab_prev = s.alphas_cumprod[tb - 1] if tb else torch.tensor(1.0, dtype=torch.float64)
        x0 = (xt[b] - (1 - ab).sqrt() * eps[b]) / ab.sqrt()
        mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * xt[b]
        var = beta * (1 - ab_prev) / (1 - ab)
        want = mean + (var.sqrt() * noise[b] if tb else 0)
        assert torch.allclose(out[b], want), b
        assert torch.allclose(ddpm.step(eps[b:b + 1], t[b:b + 1], xt[b:b + 1], noise=noise[b:b + 1])[0], out[b])
    ddim = DDIMSampler(s)
    t_prev = torch.tensor([10, 3, -1])
    out = ddim.step(eps, t, t_prev, xt)
    for b in range(3):
        ab = s.alphas_cumprod[int(t[b])]
        abp = s.alphas_cumprod[int(t_prev[b])] if t_prev[b] >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x0 = (xt[b] - (1 - ab).sqrt() * eps[b]) / ab.sqrt()
        assert torch.allclose(out[b], abp.sqrt() * x0 + (1 - abp).sqrt() * eps[b])


# -- saving and loading --------------------------------------------------------------------------------------------
def test_save_pretrained_writes_config_json_and_model_safetensors(tmp_path):
    """Every model class round-trips in tests/nn/test_pretrained.py (the shared tester); here the file contract."""
    from safetensors.torch import load_file

    from diffrep.nn import UNet, load_pretrained

    torch.manual_seed(0)
    m = UNet(tiny_unet(in_channels=1, out_channels=1))
    m.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["_class_name"] == "UNet" and cfg["model_channels"] == 8
    assert load_file(str(tmp_path / "model.safetensors")).keys() == m.state_dict().keys()
    for loaded in (UNet.from_pretrained(tmp_path), load_pretrained(tmp_path)):
        assert isinstance(loaded, UNet) and loaded.config == m.config
        for k, v in m.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k


# -- trainer -------------------------------------------------------------------------------------------------------
class _Sampler(nn.Module):
    """A model with the method surface and a sampler: one conv, loss = mean squared output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.norm = nn.BatchNorm2d(1)  # a buffer the EMA must not average

    def loss(self, batch, *, step, generator=None):
        return {"loss": self.norm(self.conv(batch[0])).pow(2).mean() + self.conv.weight.sum() ** 2}

    def sample(self, n, *, generator=None):
        return torch.tanh(self.conv(torch.randn(n, 1, 4, 4, generator=generator)))


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(24, 1, 4, 4, generator=g))


def test_train_config_fields_and_defaults():
    """AdamW with warm-up and clipping, EMA, bf16 autocast on GPU ("auto"), optional torch.compile,
    step checkpoints, sample grids."""
    from diffrep.train import TrainConfig, lr_at

    c = TrainConfig()
    assert (c.mixed_precision, c.compile, c.grad_clip > 0, 0 < c.ema_decay < 1) == ("auto", False, True, True)
    assert {"lr", "betas", "weight_decay", "warmup_steps", "ckpt_every", "keep_checkpoints", "sample_every", "seed",
            "log_every", "tensorboard"} <= set(TrainConfig.__dataclass_fields__)
    c = TrainConfig(lr=1e-3, warmup_steps=4, steps=10, lr_schedule="cosine")
    assert [lr_at(c, s) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr_at(c, 7) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 6)))


def test_ema_averages_parameters_never_buffers():
    from diffrep.train import EMA

    m = _Sampler()
    ema = EMA(m, 0.75, warmup=False)
    assert set(ema.shadow) == {n for n, _ in m.named_parameters()}
    before = m.conv.weight.detach().clone()
    with torch.no_grad():
        m.conv.weight.add_(1.0)
        m.norm.running_mean.fill_(3.0)
    ema.update(m, 1)
    assert torch.allclose(ema.shadow["conv.weight"], 0.75 * before + 0.25 * (before + 1))
    assert torch.equal(ema.full_state_dict(m)["norm.running_mean"], m.norm.running_mean)  # the live buffer


def test_trainer_writes_checkpoints_jsonl_and_grids_and_resumes_exactly(tmp_path, capsys):
    """Step checkpoints with optimizer, EMA, RNG and data-order state (manifest written last); metrics in
    JSONL; sample grids; resume="latest" continues with the losses of the uninterrupted run (the SIGKILL
    variants are tests/train/test_resume.py, the two-rank gloo DDP one tests/train/test_ddp.py)."""
    from diffrep.train import TrainConfig, Trainer, read_metrics

    def cfg(steps):
        return TrainConfig(steps=steps, batch_size=8, lr=1e-2, warmup_steps=2, log_every=1, ckpt_every=2,
                           sample_every=2, num_samples=4, ema_decay=0.9, device="cpu", seed=3)

    torch.manual_seed(0)
    Trainer(_Sampler(), _data(), cfg(6), tmp_path / "full").train()
    full = [r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl") if "loss" in r]
    assert len(full) == 6
    assert "step 6/6" in capsys.readouterr().err  # the progress line (rank 0 only: a single process here)
    ck = tmp_path / "full" / "checkpoints" / "step-00000006"
    # a model without save_pretrained gets the weights only (no config.json)
    assert {p.name for p in ck.iterdir()} == {"model.safetensors", "ema.safetensors", "trainer_state.pt", "manifest.json"}
    state = torch.load(ck / "trainer_state.pt", weights_only=True)
    assert {"step", "optimizer", "rng", "ema_num_updates"} <= set(state) and state["step"] == 6
    assert (tmp_path / "full" / "images" / "samples" / "step-00000002.png").is_file()
    torch.manual_seed(0)
    Trainer(_Sampler(), _data(), cfg(3), tmp_path / "cut").train()
    torch.manual_seed(123)  # resuming must not depend on the process's RNG
    Trainer(_Sampler(), _data(), cfg(6), tmp_path / "cut").train(resume="latest")
    cut = [r["loss"] for r in read_metrics(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert cut == full


def test_data_order_is_a_function_of_seed_and_epoch():
    """torch.randperm from a generator seeded with SeedSequence([seed, epoch]) (diffrep.data.sampling)."""
    from diffrep.train import EpochBatchSampler, epoch_permutation

    seed = int(np.random.SeedSequence([5, 2]).generate_state(1, dtype=np.uint64)[0] >> 1)
    want = torch.randperm(10, generator=torch.Generator().manual_seed(seed)).numpy()
    assert np.array_equal(epoch_permutation(10, 5, 2), want)
    assert not np.array_equal(epoch_permutation(10, 5, 3), want)
    batches = list(EpochBatchSampler(10, 4, seed=5, drop_last=True, epoch=2))
    assert batches == [list(want[:4]), list(want[4:8])]


def test_failed_save_keeps_the_previous_checkpoint_and_corruption_is_named(tmp_path, monkeypatch):
    import diffrep.train.checkpoint as ck
    from diffrep.train import list_checkpoints, load_checkpoint, save_checkpoint

    m = _Sampler()
    first = save_checkpoint(tmp_path, 1, m)
    real_save = torch.save

    def dies(obj, f, *a, **k):  # the disk fills while the trainer state is written
        real_save(obj, f, *a, **k)
        raise OSError("No space left on device")

    monkeypatch.setattr(ck.torch, "save", dies)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, m)
    monkeypatch.setattr(ck.torch, "save", real_save)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not list(tmp_path.glob(".tmp-*"))
    load_checkpoint(first, _Sampler())
    raw = (first / "model.safetensors").read_bytes()
    (first / "model.safetensors").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="model.safetensors is truncated"):
        load_checkpoint(first, _Sampler())


# -- CLI and configs -----------------------------------------------------------------------------------------------
def test_cli_has_the_platform_subcommands():
    from diffrep.cli import SUBCOMMANDS, build_parser

    assert {"info", "data", "train", "sample", "eval"} <= set(SUBCOMMANDS)
    choices = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"info", "data", "train", "sample", "eval"} <= set(choices)


def test_platform_subcommands_run(tmp_path, capsys):
    """info, data, sample and eval on tiny inputs (train: the YAML test below and the trainer tests);
    ``--resume latest`` is a train flag."""
    from diffrep.bfn import BFN, BFNConfig, BFNDataConfig, unet_io
    from diffrep.cli import build_parser, main

    assert main(["info"]) == 0 and "diffrep" in capsys.readouterr().out
    assert main(["data", "info", "digits"]) == 0 and "digits" in capsys.readouterr().out
    b = BFNDataConfig(data="discrete", image_size=8, channels=1)
    BFN(BFNConfig(bfn=b, unet=tiny_unet(**unet_io(b)), sample_steps=2)).save_pretrained(tmp_path / "m")
    assert main(["sample", str(tmp_path / "m"), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    rng = np.random.RandomState(0)
    f = rng.randint(0, 4, (800, 2))
    np.savez(tmp_path / "c.npz", codes=f + 0.1 * rng.randn(800, 2), factors=f)
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig", "--format", "json"]) == 0
    assert "mig" in capsys.readouterr().out
    assert build_parser().parse_args(["train", "--resume", "latest", "demo/toy-ddpm"]).resume == "latest"


def test_named_paper_and_cpu_recipes():
    from diffrep.recipes import get_recipe, list_recipes

    names = {r.name for r in list_recipes()}
    assert {"paramrel/celeba64", "paramrel/dsprites", "demo/toy-ddpm"} <= names
    assert get_recipe("paramrel/celeba64").make_config().model.bfn.image_size == 64


def test_yaml_config_and_command_line_overrides(tmp_path, capsys):
    """A YAML file merges over the recipe and --a.b value overrides it; unknown fields and wrong types fail
    before anything is written, naming the field (the CLI prints a message, not a traceback)."""
    import yaml

    from diffrep.cli import main

    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 7\n  lr: 0.003\n")
    assert main(["train", "demo/toy-ddpm", "--config", str(f), "--train.lr", "0.004", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["steps"] == 7 and printed["train"]["lr"] == 0.004
    out = tmp_path / "run"
    for bad, field in ((["--train.stepz", "3"], "'train.stepz'"), (["--train.steps", "abc"], "'train.steps'"),
                       (["--model.unet.attention_resolutions", "[3]"], "attention_resolutions")):
        assert main(["train", "demo/toy-ddpm", "--out", str(out), *bad]) == 2
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err, err
    assert not out.exists()


# -- visual outputs ------------------------------------------------------------------------------------------------
def test_make_grid_layout_and_png_without_torchvision(tmp_path):
    """torchvision's layout: min(nrow, B) per row, ``padding`` pixels around every cell; Pillow saves it."""
    from PIL import Image

    from diffrep.viz import make_grid, save_image

    imgs = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 3) / 4
    g = make_grid(imgs, nrow=2, padding=1, pad_value=0.5)
    assert g.shape == (3, 3 * 3 + 1, 2 * 4 + 1)
    for k in range(5):
        r, c = divmod(k, 2)
        assert torch.all(g[:, 1 + 3 * r: 3 + 3 * r, 1 + 4 * c: 4 + 4 * c] == k / 4)
    assert torch.all(g[:, 7:9, 5:8] == 0.5)  # the empty sixth cell
    p = save_image(imgs, tmp_path / "g.png", nrow=2, padding=1)
    assert Image.open(p).size == (9, 10)


def test_traversals_gifs_interpolations_and_swaps(tmp_path):
    from PIL import Image

    from diffrep.viz import (interpolation_strip, labelled_grid, latent_swap_grid, lerp, save_gif, slerp,
                             traversal_frames, traversal_grid)

    def decode(z):  # code [M, 2] -> [M, 1, 2, 2] images showing the code
        return z[:, :1, None, None].expand(-1, 1, 2, 2) + z[:, 1:, None, None] * 0

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    w = torch.tensor([0.0, 1 / 3, 1.0])
    assert torch.allclose(lerp(a, b, w), torch.stack([(1 - x) * a + x * b for x in w]))
    om = math.pi / 2  # slerp by Shoemake's formula at angle pi/2
    assert torch.allclose(slerp(a, b, w), torch.stack([math.sin((1 - x) * om) * a + math.sin(x * om) * b
                                                       for x in w.tolist()]), atol=1e-6)
    strip = interpolation_strip(decode, a, b, 4, mode="slerp")
    assert strip.shape == (4, 1, 2, 2)
    grid = traversal_grid(decode, torch.zeros(2), [-1.0, 0.0, 1.0], dims=[0], padding=0)
    assert torch.allclose(grid[0, 0, ::2], torch.tensor([-1.0, 0.0, 1.0]))
    frames = traversal_frames(decode, torch.zeros(2), [-1.0, 1.0])
    assert len(frames) == 2
    save_gif([f.clamp(0, 1) for f in frames], tmp_path / "t.gif")
    assert Image.open(tmp_path / "t.gif").n_frames == 2
    swap = latent_swap_grid(decode, torch.zeros(3, 2), torch.tensor([0.7, 0.2]), padding=0)
    assert swap.shape == (3, 3 * 2, 3 * 2)  # a row of targets, then one row per swapped unit
    assert torch.allclose(swap[0, 2:4], torch.full((2, 6), 0.7))
    labelled_grid([decode(torch.eye(2))], tmp_path / "l.png", row_labels=["z0"], col_labels=["a", "b"])
    assert (tmp_path / "l.png").is_file()


def test_viz_and_trainer_helpers_refuse_bad_arguments():
    """Weights may be numbers or sequences (a float raised AttributeError); unit and step arguments are ints."""
    from diffrep.train import EMA, TrainConfig, lr_at
    from diffrep.viz import latent_swap_grid, lerp, slerp

    a, b = torch.zeros(2), torch.ones(2)
    assert torch.allclose(lerp(a, b, 0.25), torch.full((1, 2), 0.25))
    assert torch.allclose(slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), [0.5]),
                          torch.full((1, 2), math.sqrt(0.5)))
    with pytest.raises(ValueError, match="t must be"):
        lerp(a, b, [float("nan")])
    with pytest.raises(ValueError, match="units"):
        latent_swap_grid(lambda z: z[:, :1, None, None], torch.zeros(2, 3), torch.zeros(3), units=[1.5])
    with pytest.raises(ValueError, match="step"):
        lr_at(TrainConfig(warmup_steps=4), -2)
    with pytest.raises(ValueError, match="step"):
        EMA(nn.Linear(1, 1)).update(nn.Linear(1, 1), "1")


def test_step_time_benchmark_exists():
    """The issue's benchmark: data / forward / backward / optimizer breakdown (benches/bench_train_step.py,
    results under benches/results/)."""
    from pathlib import Path

    benches = Path(__file__).resolve().parents[2] / "benches"
    src = (benches / "bench_train_step.py").read_text()
    assert all(k in src for k in ("data", "forward", "backward", "optimizer"))
    assert list((benches / "results").glob("train_step_cpu_*.txt"))
