"""The analyses are statistics of a trained model: the same numbers inside and outside the caller's
autocast (docs/architecture.md#autocast), as the metrics they feed. CPU bf16 autocast lowers matmul,
linear and conv as CUDA's does; without the guard (diffrep.ops._full_precision) every guarded case
moved under it: posterior means, sigma^2(x_t), the A.8 coherence, the guidance norms, the chains'
samples (variability, disk centres, low-variance rows), the eps-MSE bands, the multi-beta information
curve and the traversal decoders' images, from ~3e-5 (the disk centres) to whole units (a flipped
discrete pixel). The model calls run in the model's own precision, as the metrics' encoder calls do:
a model trained under autocast is analysed in its stored weights' precision, so a report does not
depend on whether the analysis ran inside a training loop's autocast region.

Controls, which no analysis guard covers: the exact-Bayes eps-MSE and the nearest-image distance
compute in float64, which autocast never lowers; the FID runs its model sampling inside
metrics.generation's guarded feature pass. Each case is computed once outside autocast (the
reference) and once inside, and must agree to float32 rounding."""

import math
import types

import pytest
import torch

from diffrep.analysis import multibeta as MB
from diffrep.analysis import sami as A
from diffrep.analysis import sami_validation as SV
from diffrep.analysis import traversal as TR
from diffrep.data.disks import disks_geometry

from helpers import assert_same_inside_and_outside_bf16_autocast, perturbed, sami_images, tiny_paramrel, tiny_sami

MODEL = tiny_sami(dtype=torch.float32, sampler="ddim")  # float32: autocast never lowers float64
X = sami_images(4, dtype=torch.float32)
DISKS = disks_geometry(8)


class _LinearVAE:
    """A multi-beta VAE interface on two float32 linear maps (codes and images lowered under autocast)."""

    def __init__(self):
        torch.manual_seed(0)
        self.enc, self.dec = torch.nn.Linear(12, 2), torch.nn.Linear(2, 12)
        self.config = types.SimpleNamespace(beta_max=1.0)

    def encode(self, x, b):
        return (1 - b) * self.enc(x.flatten(1))

    def decode(self, z, b):
        return self.dec(z).reshape(-1, 1, 3, 4)

    def sigma(self, b):
        return torch.tensor([math.sqrt(1e-4 + b)])


def _offset_images(seed, n):
    """Images far from 0 (|x|^2 ~ 5000 against distances ~ 24): a bf16 |a|^2 - 2 a.r + |r|^2 would lose them."""
    return torch.randn(n, 1, 3, 4, generator=torch.Generator().manual_seed(seed)) + 20


def _codes():
    return torch.randn(12, 3, generator=torch.Generator().manual_seed(0))


def _centroid_shifts():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Unflatten(1, (1, 8, 8)), torch.nn.Tanh())
    c = _codes()
    r = TR.centroid_shifts(lambda z: net(z).detach(), c[:3], [0, 1], TR.traversal_values(c, 3))
    return [r["images"], [list(v.values()) for v in r["per_latent"].values()]]


def _prior_decoder():
    m = perturbed(tiny_paramrel("continuous", latent=4, steps=3), 0.3).eval()  # perturbed: z matters
    return TR.prior_decoder(m)(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))


def _attributes():
    return (torch.randn(40, 2, generator=torch.Generator().manual_seed(0)) > 0).numpy()


CASES = {
    "encode_batched": lambda: A.encode_batched(MODEL, X, with_logvar=True),
    # its only model call is encode_batched: the guard there covers it (and the representation metrics)
    "posterior_mean_monotonicity": lambda: A.posterior_mean_monotonicity(MODEL, DISKS, num_lines=2, num_points=4,
                                                                         num_readout=40),
    "attribute_metrics": lambda: A.attribute_metrics(MODEL, sami_images(40, dtype=torch.float32), _attributes()),
    "variability_reduction": lambda: A.variability_reduction(MODEL, X[:2], 4, reference=X, seed=0),
    "posterior_variance_spectrum": lambda: A.posterior_variance_spectrum(MODEL, X[:1], [0, 10, 19], num_noise=4),
    "perturb_low_variance_axes": lambda: A.perturb_low_variance_axes(MODEL, X[:1], (-1.0, 0.0, 1.0)),
    "global_axes": lambda: A.global_axes(MODEL, X, num_noise=1),
    "guidance_magnitude": lambda: A.guidance_magnitude(MODEL, X[:1]),
    "disk_position_transfer": lambda: A.disk_position_transfer(MODEL, DISKS, num_guides=2, num_samples=2),
    "eps_mse_by_band": lambda: SV.eps_mse_by_band(MODEL, X, num_bands=2),
    "information_curve": lambda: MB.information_curve(_LinearVAE(), _offset_images(1, 6), [0.0, 0.5, 1.0]),
    "centroid_shifts": _centroid_shifts,
    "prior_decoder": _prior_decoder,
    # controls (module docstring)
    "disks_bayes_eps_mse": lambda: A.disks_bayes_eps_mse(MODEL.schedule, [5, 15], DISKS, grid=(5, 5, 5),
                                                         num_images=16),
    "nearest_distance": lambda: MB.nearest_distance(_offset_images(1, 6), _offset_images(2, 10)),
    "fid": lambda: A.fid(MODEL, sami_images(6, dtype=torch.float32), lambda y: y.flatten(1)[:, :4].double(),
                         batch_size=3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_numbers_inside_and_outside_bf16_autocast(name):
    assert_same_inside_and_outside_bf16_autocast(name, CASES[name])


def test_autocast_is_on_again_after_a_guarded_analysis():
    """The guard switches autocast off only for the analysis' own call: the caller's region keeps lowering."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        A.encode_batched(MODEL, X)
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
