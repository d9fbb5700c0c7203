"""TorchScript files are read alike by the FID weights loader and the user feature extractor: torch's
DeprecationWarning about ``torch.jit.load`` (torch >= 2.9), addressed to diffrep's own call, reaches the
user from neither (load_feature_extractor let it through while inception._read_state hid it)."""

import warnings

import pytest
import torch

from diffrep.metrics.generation import load_feature_extractor
from diffrep.metrics.inception import _read_state


class _Pool(torch.nn.Module):
    """A 'feature extractor': per-channel means, then a fixed linear map (3 -> 2)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.proj(x.mean(dim=(2, 3)))


@pytest.fixture
def archive(tmp_path):
    torch.manual_seed(0)
    net = _Pool()
    with warnings.catch_warnings():  # torch.jit.script/save warn too; only loading is under test
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(tmp_path / "f.pt"))
    return tmp_path / "f.pt", net


def _jit_warnings(load, path):
    """(what ``load(path)`` returned, the jit DeprecationWarning messages it let through to the caller)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = load(path)
    return got, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning) and "jit" in str(w.message)]


def test_load_feature_extractor_gives_the_module_without_the_jit_deprecation(archive):
    path, net = archive
    extract, warned = _jit_warnings(load_feature_extractor, path)
    assert warned == []
    x = torch.rand(4, 1, 6, 6) * 2 - 1  # one channel: repeated to three
    with torch.no_grad():
        want = x.mean(dim=(2, 3)) @ net.proj.weight.T.sum(0, keepdim=True) + net.proj.bias
    torch.testing.assert_close(extract(x), want, rtol=1e-6, atol=1e-6)


def test_read_state_gives_the_tensors_without_the_jit_deprecation(archive):
    path, net = archive
    state, warned = _jit_warnings(_read_state, path)
    assert warned == []
    assert set(state) == {"proj.weight", "proj.bias"}
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v)


def test_a_file_that_is_not_torchscript_is_still_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="is not a TorchScript module loadable with torch.jit.load"):
        load_feature_extractor(bad)
