"""Step checkpoints (diffrep.train.checkpoint; docs/training.md): which checkpoint "latest" is, what a load
refuses (another model class, a state file that is not plain tensors and Python types, missing optimiser
states) and the messages that name the file. Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import fractions
import json

import pytest
import torch
from torch import nn

from diffrep.nn import ConvEncoder, ConvVAEConfig, HalfUNet, HalfUNetConfig
from diffrep.train import load_checkpoint, resolve_checkpoint, save_checkpoint, verify_checkpoint
from diffrep.train.checkpoint import MANIFEST_NAME, STATE_NAME, list_checkpoints


def _model():
    torch.manual_seed(0)
    return HalfUNet(HalfUNetConfig(image_size=8, in_channels=1, model_channels=4, channel_mult=(1,), num_res_blocks=1,
                                   latent_dim=2, num_groups=2))


def test_latest_is_the_newest_of_several(tmp_path):
    m = _model()
    for step in (3, 10, 7):
        save_checkpoint(tmp_path, step, m, keep=3)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 7, 10]
    assert resolve_checkpoint("latest", tmp_path) == tmp_path / "step-00000010"
    # any other spec is a path, which must be a folder
    assert resolve_checkpoint(tmp_path / "step-00000007", tmp_path) == tmp_path / "step-00000007"
    with pytest.raises(FileNotFoundError, match=r"^checkpoint directory not found: .*step-00000099$"):
        resolve_checkpoint(tmp_path / "step-00000099", tmp_path)
    with pytest.raises(TypeError, match="^spec must be a path"):
        resolve_checkpoint(3, tmp_path)
    with pytest.raises(TypeError, match="^root must be a path"):
        resolve_checkpoint("latest", 3)
    with pytest.raises(TypeError, match="^path must be a path"):
        load_checkpoint(3, m)


def test_manifest_records_every_file(tmp_path):
    import hashlib

    d = save_checkpoint(tmp_path, 4, _model(), state={"note": "x"})
    manifest = json.loads((d / MANIFEST_NAME).read_text())
    assert manifest["format"] == 1 and manifest["step"] == 4
    files = sorted(p.name for p in d.iterdir() if p.name != MANIFEST_NAME)
    assert sorted(manifest["files"]) == files
    for name in files:
        raw = (d / name).read_bytes()
        assert manifest["files"][name] == {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert verify_checkpoint(d) == manifest


def test_loads_refuse_other_classes_and_unsafe_state(tmp_path):
    m = _model()
    d = save_checkpoint(tmp_path, 1, m)
    with pytest.raises(ValueError, match=r"^checkpoint .*step-00000001 holds a HalfUNet, not a ConvEncoder$"):
        load_checkpoint(d, ConvEncoder(ConvVAEConfig(image_size=32, in_channels=1)))
    with pytest.raises(ValueError, match=r"step-00000001/model\.safetensors: state dict does not match Linear"):
        load_checkpoint(d, nn.Linear(2, 2))  # a plain module is not asked for a config
    # the trainer state is read with weights_only: an arbitrary pickled object is refused, not loaded
    torch.save({"step": 1, "x": fractions.Fraction(1, 3)}, d / STATE_NAME)
    with pytest.raises(ValueError, match=rf"^checkpoint .*: {STATE_NAME} cannot be read \(truncated or corrupted\?\)"):
        load_checkpoint(d, _model(), verify=False)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    d2 = save_checkpoint(tmp_path, 2, m)
    with pytest.raises(ValueError, match=r"^checkpoint .*step-00000002 has no optimizer state$"):
        load_checkpoint(d2, _model(), optimizer=opt)
    with pytest.raises(ValueError, match=r"^checkpoint .*step-00000002 has no discriminator optimizer state$"):
        load_checkpoint(d2, _model(), disc_optimizer=opt)


def test_verify_messages_and_an_older_state_without_the_ema_counter(tmp_path):
    from diffrep.train import EMA

    m = _model()
    ema = EMA(m, 0.9)
    ema.update(m, 1)
    ema.update(m, 2)
    d = save_checkpoint(tmp_path, 1, m, ema=ema)
    with pytest.raises(TypeError, match="^path must be a path"):
        verify_checkpoint(3)
    # a state written before the EMA counter was saved: the counter restarts at 0
    state = torch.load(d / STATE_NAME, weights_only=True)
    assert state["ema_num_updates"] == 2
    del state["ema_num_updates"]
    torch.save(state, d / STATE_NAME)
    ema2 = EMA(_model(), 0.9)
    ema2.num_updates = 5
    load_checkpoint(d, _model(), ema=ema2, verify=False)
    assert ema2.num_updates == 0
    (d / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=rf"^{d / MANIFEST_NAME} is corrupted: "):
        verify_checkpoint(d)


def test_save_defaults_folders_and_resaves(tmp_path):
    import os

    m = _model()
    root = tmp_path / "a" / "b"  # created with its parents
    for step in (1, 2, 3):
        save_checkpoint(root, step, m)
    assert [s for s, _ in list_checkpoints(root)] == [2, 3]  # keep=2 by default
    # a leftover temporary folder of this process is replaced, not an error
    (root / f".tmp-step-00000004-{os.getpid()}").mkdir()
    save_checkpoint(root, 4, m)
    assert not list(root.glob(".tmp-*"))
    # saving a step again replaces it
    with torch.no_grad():
        m.body[0].weight.add_(1.0)
    d = save_checkpoint(root, 4, m)
    m2 = _model()
    load_checkpoint(d, m2)
    assert torch.equal(m2.body[0].weight, m.body[0].weight) and not list(root.glob(".old-*"))
    for kw, name in ((dict(keep=0), "keep"), (dict(step=-1), "step")):
        args = dict(root=root, step=5, model=m) | kw
        with pytest.raises(ValueError, match=f"^{name}"):
            save_checkpoint(args.pop("root"), args.pop("step"), args.pop("model"), **args)
    with pytest.raises(TypeError, match="^root must be a path"):
        save_checkpoint(3, 1, m)
    with pytest.raises(TypeError, match=r"^model must be an nn.Module, got str$"):
        save_checkpoint(root, 1, "m")


def test_listing_and_stale_folders(tmp_path):
    m = _model()
    (tmp_path / ".tmp-step-00000001-999999").mkdir(parents=True)  # a crashed save of another process
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / MANIFEST_NAME).write_text("{}")  # a manifest outside a step folder
    (tmp_path / "step-00000009").mkdir()  # a step folder without a manifest: incomplete
    save_checkpoint(tmp_path, 2, m)
    assert not (tmp_path / ".tmp-step-00000001-999999").exists()
    assert list_checkpoints(tmp_path) == [(2, tmp_path / "step-00000002")]
    with pytest.raises(TypeError, match="^root must be a path"):
        list_checkpoints(3)
