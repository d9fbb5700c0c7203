"""The SAMI analyses on every device (the conftest ``device`` fixture: the CPU, and CUDA where usable).

The analyses seed a generator and hand it to the model's chains; SAMI draws its noise on its own device and
torch refuses a CPU generator for a CUDA draw, so each analysis of a model on a GPU failed at its first
sample. ``diffrep.analysis.encoding.seeded`` now takes the model's device. On the CPU the numbers are those
of a CPU generator of the same seed (checked against a run with one made here); on a GPU the same calls must
run (the GPU check collects this file's CUDA cases).
"""

from __future__ import annotations

import numpy as np
import torch

from diffrep.analysis import sami as A
from diffrep.analysis.encoding import seeded
from helpers import sami_images as images, tiny_sami as tiny_model


def test_seeded_is_a_generator_of_the_seed_on_the_device(device):
    g = seeded(5, device)
    assert g.device.type == device.type
    want = torch.randn(4, generator=torch.Generator(device=device).manual_seed(5), device=device)
    assert torch.equal(torch.randn(4, generator=g, device=device), want)
    assert seeded(None, device) is None
    cpu = seeded(5)  # no device: the CPU, as before
    assert cpu.device.type == "cpu" and torch.equal(torch.randn(4, generator=cpu),
                                                    torch.randn(4, generator=torch.Generator().manual_seed(5)))


def test_the_chain_analyses_run_on_the_model_device(device):
    m = tiny_model(sampler="ddim").to(device)
    x = images(4)
    v = A.variability_reduction(m, x[:2], 3, reference=x, seed=0)
    assert len(v["v_cond_per_guide"]) == 2 and v["v_uncond"] > 0
    p = A.perturb_low_variance_axes(m, x[:1], (-1.0, 1.0))
    assert p["rows"].shape == (2, 2, 1, 8, 8) and p["rows"].device.type == "cpu"
    gm = A.guidance_magnitude(m, x[:1])
    assert len(gm["t"]) == 5 and all(np.isfinite(gm["eps_norm"]))
    f = A.fid(m, x, lambda im: im.flatten(1)[:, :4].double().cpu(), protocol="both", batch_size=2)
    assert f["fid_prior"] >= 0 and f["fid_reconstruction"] >= 0
    d = A.disk_position_transfer(m, num_guides=1, num_samples=2, seed=0)
    assert d["num_guides"] == 1 and len(d["guide_centres"]) == 1


def test_on_the_cpu_the_chains_draw_the_stream_of_a_cpu_generator_of_the_seed():
    """guidance_magnitude's chain (seed 3) against the same chain run here with a CPU generator of seed 3."""
    m = tiny_model(sampler="ddim")
    x = images(1)
    norms = []
    m.conditional_sample(x, 1, z_mode="posterior_mean", generator=torch.Generator().manual_seed(3),
                         callback=lambda i, t, xt, eps, g: norms.append(float(eps.flatten(1).norm(dim=1).mean())))
    assert A.guidance_magnitude(m, x, seed=3)["eps_norm"] == norms
