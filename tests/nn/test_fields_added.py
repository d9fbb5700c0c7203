"""A config.json written before a field existed loads with the value its weights were trained with
(``Config.fields_added``), not with today's default (docs/architecture.md#save-and-load-format)."""

import json

import pytest
import torch

from diffrep.methods.vae import BetaVAE
from diffrep.nn import ConvEncoder, ConvVAEConfig
from diffrep.nn.pretrained import PretrainedMixin


def _drop_field(folder, name):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    del data[name]
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("make", [
    lambda: BetaVAE(BetaVAE.config_class(image_size=32, conv_kernels=(4, 4, 4, 4))),
    lambda: ConvEncoder(ConvVAEConfig(image_size=32, in_channels=1, conv_kernels=(4, 4, 4, 4))),
])
def test_a_model_saved_before_conv_kernels_existed_loads_with_4x4_kernels(tmp_path, make):
    torch.manual_seed(0)
    old = make().eval()
    old.save_pretrained(tmp_path)
    _drop_field(tmp_path, "conv_kernels")  # as the files written before 2026-12-07
    new = PretrainedMixin.from_pretrained(tmp_path).eval()
    assert type(new) is type(old) and new.config.conv_kernels == (4, 4, 4, 4)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    encode = (lambda m, v: m.encode(v)) if isinstance(old, BetaVAE) else (lambda m, v: m(v)[0])
    torch.testing.assert_close(encode(new, x), encode(old, x), rtol=0, atol=0)


def test_a_config_that_holds_the_field_keeps_its_value(tmp_path):
    model = BetaVAE(BetaVAE.config_class(image_size=32))
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["conv_kernels"] == [4, 4, 2, 2]
    assert PretrainedMixin.from_pretrained(tmp_path).config.conv_kernels == (4, 4, 2, 2)


def test_fields_added_is_not_a_config_field():
    assert "fields_added" not in BetaVAE.config_class().to_dict()
    assert "fields_added" not in ConvVAEConfig().to_dict()
