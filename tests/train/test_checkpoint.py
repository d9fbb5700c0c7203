import json

import pytest
import torch
from torch import nn

from diffrep.nn import HalfUNet, HalfUNetConfig
from diffrep.train import EMA, list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint, verify_checkpoint
import diffrep.train.checkpoint as ckpt_mod


def _setup():
    torch.manual_seed(0)
    m = HalfUNet(HalfUNetConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, latent_dim=3, num_groups=4))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.randn(2, 3, 8, 8))[0].sum().backward()
    opt.step()
    ema = EMA(m, 0.9)
    ema.update(m, 1)
    return m, opt, ema


def test_save_load_roundtrip_and_pruning(tmp_path):
    m, opt, ema = _setup()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, m, optimizer=opt, ema=ema, state={"note": "x"}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert resolve_checkpoint("latest", tmp_path).name == "step-00000003"
    m2 = HalfUNet(m.config)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    ema2 = EMA(m2, 0.9)
    state = load_checkpoint(resolve_checkpoint("latest", tmp_path), m2, optimizer=opt2, ema=ema2)
    assert state["step"] == 3 and state["note"] == "x" and state["ema_num_updates"] == 1
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    for k in ema.shadow:
        assert torch.equal(ema.shadow[k], ema2.shadow[k])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    # a checkpoint directory is also a save_pretrained directory
    assert isinstance(HalfUNet.from_pretrained(tmp_path / "step-00000003", weights="ema"), HalfUNet)


@pytest.mark.parametrize("victim,how,match", [
    ("model.safetensors", "truncate", "model.safetensors is truncated"),
    ("trainer_state.pt", "flip", "trainer_state.pt is corrupted"),
    ("manifest.json", "delete", "incomplete checkpoint"),
    ("ema.safetensors", "delete", "ema.safetensors is missing"),
])
def test_corruption_is_detected_with_the_file_named(tmp_path, victim, how, match):
    m, opt, ema = _setup()
    d = save_checkpoint(tmp_path, 5, m, optimizer=opt, ema=ema)
    f = d / victim
    raw = f.read_bytes()
    if how == "truncate":
        f.write_bytes(raw[: len(raw) - 7])
    elif how == "flip":
        f.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
    else:
        f.unlink()
    with pytest.raises(ValueError, match=match):
        load_checkpoint(d, HalfUNet(m.config), optimizer=opt)


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    m, opt, ema = _setup()
    save_checkpoint(tmp_path, 1, m, optimizer=opt, ema=ema)
    before = {p.name: p.read_bytes() for p in (tmp_path / "step-00000001").iterdir()}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, m, optimizer=opt, ema=ema, keep=1)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not list(tmp_path.glob(".tmp-*")) and not (tmp_path / "step-00000002").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "step-00000001").iterdir()} == before
    verify_checkpoint(tmp_path / "step-00000001")


def test_plain_module_and_bad_arguments(tmp_path):
    net = nn.Linear(3, 2)
    d = save_checkpoint(tmp_path, 0, net)
    assert json.loads((d / "manifest.json").read_text())["step"] == 0
    net2 = nn.Linear(3, 2)
    load_checkpoint(d, net2)
    assert torch.equal(net.weight, net2.weight)
    with pytest.raises(ValueError, match="weights do not match"):
        load_checkpoint(d, nn.Linear(4, 2))
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path, -1, net)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        resolve_checkpoint("latest", tmp_path / "nothing")
