"""methods/diffusion_autoencoder.py exports only what other code uses: check_latent and swap_dims were public
(in ``__all__``) but only CodeConditionedAutoencoder in the same module called them, so they are private;
their checks still reach the users through the DiffAE / InfoDiffusion verbs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from diffrep.methods import diffusion_autoencoder as da

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "python" / "diffrep" / "methods" / "diffusion_autoencoder.py"


def _users(name: str) -> list[Path]:
    pat = re.compile(rf"\b{re.escape(name)}\b")
    files = [p for d in ("python", "tests", "scripts", "benches", "docs") for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".md") and p.resolve() not in (MODULE, Path(__file__).resolve())]
    return [p for p in files if pat.search(p.read_text(encoding="utf-8", errors="replace"))]


@pytest.mark.parametrize("name", da.__all__)
def test_every_export_has_a_user_outside_the_module(name):
    assert _users(name), f"{name} is exported but used only inside diffusion_autoencoder.py"


def test_the_private_helpers_are_not_exported():
    assert not {"check_latent", "swap_dims"} & set(da.__all__)
    assert not hasattr(da, "check_latent") and not hasattr(da, "swap_dims")


def test_the_code_check_still_names_the_code():
    z = torch.zeros(2, 3)
    assert da._check_latent(z, 3, "z_sem", batch=2) is z
    with pytest.raises(ValueError, match=r"z_sem must be a \[2, 3\] tensor, got torch.Size\(\[2, 4\]\)"):
        da._check_latent(torch.zeros(2, 4), 3, "z_sem", batch=2)
    with pytest.raises(ValueError, match="z_sem holds NaN or infinite values"):
        da._check_latent(torch.tensor([[0.0, float("nan"), 1.0]]), 3, "z_sem")
    # the swap takes the named dimensions from the source, the rest from z
    out = da._swap_dims(torch.zeros(2, 3), torch.ones(2, 3), [0, 2])
    assert torch.equal(out, torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]))
