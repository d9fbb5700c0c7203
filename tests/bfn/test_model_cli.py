"""The plain BFN module: shapes, gradients, save/load, and training + sampling from the CLI."""

import pytest
import torch

from diffrep.bfn import BFN, BFNConfig, BFNDataConfig
from diffrep.config import ConfigError
from diffrep.nn import UNetConfig, load_pretrained

from helpers import tiny_bfn as _model


@pytest.mark.parametrize("kind,extra", [("continuous", {}), ("discretised", {}), ("discrete", {}), ("discrete", {"K": 3}),
                                        ("discretised", {"time_loss": "discrete", "loss_steps": 10}),
                                        ("discrete", {"time_loss": "discrete", "loss_steps": 10})])
def test_bfn_loss_gradients_and_samples(kind, extra):
    torch.manual_seed(0)
    m = _model(kind, **extra)
    x = (torch.rand(4, 1, 8, 8) * 2 - 1)
    if kind == "discrete":
        x = x.sign()
    out = m.loss((x, None))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    s = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8) and float(s.abs().max()) <= 1.0


def test_bfn_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = _model("discretised")
    for p in m.parameters():
        p.data.normal_(0, 0.05)
    m.save_pretrained(tmp_path)
    m2 = load_pretrained(tmp_path)
    assert isinstance(m2, BFN) and m2.config == m.config
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(m.sample(2, generator=g()), m2.sample(2, generator=g()))
    assert torch.allclose(m.reconstruction_loss(x, g()), m2.reconstruction_loss(x, g()))


def test_bfn_config_errors_name_the_field():
    b = BFNDataConfig(data="discrete", image_size=8, channels=1)
    with pytest.raises(ConfigError, match="unet.out_channels"):
        BFNConfig(bfn=b, unet=UNetConfig(image_size=8, in_channels=1, out_channels=2, model_channels=8,
                                         channel_mult=(1,), attention_resolutions=(), num_groups=4))
    with pytest.raises(ConfigError, match="loss_steps"):
        BFNDataConfig(time_loss="discrete")
    m = _model("discrete")
    with pytest.raises(ValueError, match="shape"):
        m.loss(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError):
        m.sample(0)


def test_bfn_cli_trains_and_samples(tmp_path):
    from diffrep.cli import main

    out = tmp_path / "run"
    rc = main(["bfn", "train", "bfn/digits", "--out", str(out), "--train.steps", "3", "--train.batch_size", "8",
               "--train.sample_every", "0", "--model.unet.model_channels", "8", "--model.unet.num_groups", "4"])
    assert rc == 0 and (out / "final" / "model.safetensors").is_file()
    rc = main(["bfn", "sample", str(out / "final"), "--n", "4", "--steps", "3", "--weights", "model",
               "--out", str(tmp_path / "g.png")])
    assert rc == 0 and (tmp_path / "g.png").is_file()


def test_bfn_sample_help_uses_the_shared_weights_convention(capsys):
    """``diffrep bfn sample --help`` offers --weights auto|ema|model with auto the default (cli/_common.py)."""
    from diffrep.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bfn", "sample", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--weights {auto,ema,model}" in text and "auto (default)" in text
