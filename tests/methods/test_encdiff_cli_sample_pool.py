"""``diffrep encdiff sample``: the n conditions are drawn from the raw tokens of a pool of at least 64
dataset images (it was the n images of ``--n`` themselves, so 16 samples repeated conditions of only
16 images)."""

from __future__ import annotations

import pytest
import torch

from diffrep.cli import main


def test_sample_draws_its_conditions_from_a_pool_of_64_distinct_images(tmp_path, monkeypatch):
    from diffrep.methods.encdiff import EncDiff
    from diffrep.recipes.encdiff import cpu_model

    torch.manual_seed(0)
    cfg = cpu_model(num_units=3, token_dim=4)
    m = EncDiff(type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "sample_steps": 1}))
    d = tmp_path / "model"
    m.eval().save_pretrained(d)
    images = torch.rand(100, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    monkeypatch.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: images)
    seen = {}
    real = EncDiff.sample

    def sample(self, n, *, tokens=None, **kw):
        seen["n"], seen["tokens"] = n, tokens
        return real(self, n, tokens=tokens, **kw)

    monkeypatch.setattr(EncDiff, "sample", sample)
    assert main(["encdiff", "sample", str(d), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert seen["n"] == 4
    bank = seen["tokens"]
    assert bank.shape == (64, 3, 4)
    # every row is the raw token set of one dataset image, and the 64 images are distinct
    every = m.tokens(images, aligned=False)
    dist = (bank[:, None] - every[None]).abs().flatten(2).amax(-1)                # (64, 100) max abs difference
    assert float(dist.min(1).values.max()) == pytest.approx(0.0, abs=1e-6)
    assert len(set(dist.argmin(1).tolist())) == 64
