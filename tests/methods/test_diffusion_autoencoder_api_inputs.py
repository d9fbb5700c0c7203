"""Inputs a script gets wrong on the diffusion autoencoders' public verbs, found by a newcomer pass (issue 22):
each raises naming the verb and the problem, before any work, instead of running on a misread value."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.recipes import diffae, disdiff, infodiffusion


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"DiffAE": DiffAE(dataclasses.replace(diffae.cpu_model(latent_dim=4), sample_steps=2)).eval(),
            "InfoDiffusion": InfoDiffusion(dataclasses.replace(infodiffusion.cpu_model(latent_dim=4), sample_steps=2)).eval(),
            "DisDiff": DisDiff(dataclasses.replace(disdiff.cpu_model(num_units=2, unit_dim=2), sample_steps=2)).eval()}


X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", ["DiffAE", "InfoDiffusion", "DisDiff"])
def test_reconstruct_takes_a_bool_and_names_itself(models, name):
    """``stochastic="no"`` decoded from the inverted x_T (a non-empty string is truthy); a wrong image shape was
    reported as ``InfoDiffusion.posterior`` / ``DisDiff.encode``, names a caller never used."""
    m = models[name]
    for value in ("no", "False", 0, None):
        with pytest.raises(TypeError, match=f"stochastic must be True or False, got {value!r}"):
            m.reconstruct(X, num_steps=2, stochastic=value)
    with pytest.raises(ValueError, match=rf"^{name}\.reconstruct: x must have shape \[B, 3, 16, 16\], got \(2, 1, 16, 16\)"):
        m.reconstruct(X[:, :1], num_steps=2)
    # both settings still run: the inverted x_T and fresh noise differ
    with torch.no_grad():
        a = m.reconstruct(X, num_steps=2, stochastic=True)
        b = m.reconstruct(X, num_steps=2, stochastic=False, generator=torch.Generator().manual_seed(0))
    assert a.shape == b.shape == X.shape and not torch.equal(a, b)


def test_fit_attribute_needs_both_classes(models):
    """Labels of one class only: the logistic fit then grows its bias, and the returned "direction" is whatever
    Adam's first steps left (nonzero), which manipulate then used without a word."""
    m = models["DiffAE"]
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    m.fit_latent_stats(z)
    for y in (torch.ones(6), torch.zeros(6, dtype=torch.long)):
        with pytest.raises(ValueError, match=rf"labels are all {int(y[0])}: the classifier needs codes of both classes"):
            m.fit_attribute(z, y, steps=3)
    with pytest.raises(ValueError, match=r"labels must be N binary \(0/1\) values, one per code: got 6 labels with "
                                         r"values \[0\.0, 2\.0\] for 6 codes"):
        m.fit_attribute(z, torch.tensor([0, 2, 0, 2, 0, 2]), steps=3)
    # a separable hand case: class = sign of dimension 2 of the standardised code; w points along +e_2 most
    y = (m.normalize_z(z)[:, 2] > 0).float()
    assert 0 < int(y.sum()) < 6
    w = m.fit_attribute(z, y, steps=200)
    assert int(w.abs().argmax()) == 2 and float(w[2]) > 0
