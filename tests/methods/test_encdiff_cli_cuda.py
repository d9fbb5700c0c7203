"""``diffrep encdiff`` verbs with ``--device cuda`` (the figures read the model's tokens back to numpy: the anchors
figure called ``.numpy()`` on CUDA tensors). Skipped without a GPU; the GPU check runs it (a ``*_cuda``
file). The codes written on the GPU equal the CPU model's to float32 tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffrep.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny CPU-recipe model (3 units, 4-d tokens) with anchors, saved, and the rendered dataset the CLI reuses."""
    from diffrep.methods.encdiff import EncDiff
    from diffrep.recipes.encdiff import Shapes3DSubgrid, cpu_model

    torch.manual_seed(0)
    cfg = cpu_model(num_units=3, token_dim=4)
    cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "sample_steps": 2})
    m = EncDiff(cfg)
    ds = Shapes3DSubgrid(pool=4)
    m.train()
    m.loss(ds[list(range(16))][0], step=0)
    m.refresh_anchors(ds.images01[:600] * 2 - 1, batch_size=600)
    d = tmp_path_factory.mktemp("encdiff_cuda") / "model"
    m.eval().save_pretrained(d)
    mp = pytest.MonkeyPatch()
    mp.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: ds)
    yield d, m, ds
    mp.undo()


def test_the_verbs_run_on_cuda(tmp_path, saved):
    d = str(saved[0])
    for verb in ("sample", "interchange", "attention", "anchors"):
        out = tmp_path / f"{verb}.png"
        assert main(["encdiff", verb, d, "--device", "cuda", "--n", "4" if verb != "anchors" else "200",
                     "--out", str(out)]) == 0, verb
        assert out.stat().st_size > 100


def test_codes_written_on_cuda_are_the_cpu_models(tmp_path, saved):
    d, m, ds = saved
    out = tmp_path / "codes.npz"
    assert main(["encdiff", "encode", str(d), "--device", "cuda", "--n", "40", "--out", str(out), "--seed", "3"]) == 0
    z = np.load(out)
    x = ds[z["indices"]][0]
    np.testing.assert_allclose(z["scalars"], m.encode(x).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z["tokens"], m.tokens(x).numpy(), rtol=1e-4, atol=1e-5)
