"""The BFN code's gradient clipping in diffrep's loss units (faithfulness review, docs/kernels/bfn.md#reference-defaults).

Every config of nnaisense/bayesian-flow-networks sets ``grad_clip_norm: 5.0``, applied to the gradient of its loss
averaged over the batch and the D data dimensions (``BFN.forward`` returns ``loss.mean()`` of per-dimension terms).
diffrep's ``BFN.loss`` and ``ParamReL.loss`` sum over the data dimensions, so their gradients are D times larger;
the recipes that follow the BFN code (and the ParamReL paper recipes, whose clip is that fill-in) clip at 5 D. Before
this fix they clipped at 5, i.e. at 5/D in the reference's units (0.0064 for MNIST), which normalises every step's
gradient instead of reproducing the reference's optimisation."""

import pytest
import torch

from diffrep.recipes import bfn as bfn_recipes
from diffrep.recipes import paramrel as paramrel_recipes


@pytest.mark.parametrize("make,D", [(bfn_recipes.mnist_discrete, 784), (bfn_recipes.cifar10_discretised, 3072)])
def test_bfn_reference_recipes_clip_at_5_per_dimension(make, D):
    cfg = make()
    assert cfg.model.bfn.num_dims == D
    assert cfg.train.grad_clip == pytest.approx(5.0 * D)


@pytest.mark.parametrize("name,D", [("bmnist", 784), ("bfashionmnist", 784), ("celeba64", 12288), ("shapes3d64", 12288),
                                    ("cifar10", 3072), ("celeba64_delta", 12288), ("cifar10_delta", 3072)])
def test_paramrel_paper_recipes_clip_at_5_per_dimension(name, D):
    cfg = getattr(paramrel_recipes, name)()
    assert cfg.model.reduction == "per_example" and cfg.train.grad_clip == pytest.approx(5.0 * D)


@pytest.mark.parametrize("preset", ["iclr25", "notebook"])
def test_compat_presets_keep_the_clip_of_their_per_dimension_loss(preset):
    cfg = paramrel_recipes.paramrel_compat(paramrel_recipes.bmnist(), preset)
    assert cfg.model.reduction != "per_example" and cfg.train.grad_clip == 5.0


@pytest.mark.parametrize("c", [5.0, 0.05])
def test_clip_cd_on_the_sum_equals_clip_c_on_the_mean_under_adamw(c):
    """The rationale, with plain torch: AdamW on loss_sum = D loss_mean clipped at c D takes the same steps as on
    loss_mean clipped at c (c = 0.05 clips every step here, c = 5 none), while clipping the sum at c = 5 does not
    (when both clip every step the steps are normalised gradients and agree anyway).
    (clip_grad_norm_ divides by norm + 1e-6: the runs agree to ~3e-8, against ~1e-3 apart without the factor D.)"""
    D = 50
    x = torch.randn(16, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randn(16, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(scale, clip, steps=5):
        torch.manual_seed(2)
        lin = torch.nn.Linear(D, D).double()
        opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, eps=1e-12, weight_decay=0.01)
        norms = []
        for _ in range(steps):
            opt.zero_grad()
            per_dim = (lin(x) - target).square()  # (B, D)
            loss = per_dim.sum(1).mean() if scale == "sum" else per_dim.mean()
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(lin.parameters(), clip)))
            opt.step()
        return torch.cat([p.detach().flatten() for p in lin.parameters()]), norms

    ref, norms = run("mean", c)
    assert all(n > c for n in norms) if c < 1 else all(n < c for n in norms)
    assert torch.allclose(run("sum", c * D)[0], ref, rtol=1e-5, atol=1e-7)
    if c > 1:  # the reference does not clip here; clipping the sum at c would clip every step
        assert not torch.allclose(run("sum", c)[0], ref, rtol=1e-3)
