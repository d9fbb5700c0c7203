"""EncDiff and DyGA draw their random numbers on the generator's own device, then move them to the data.

On a GPU the trainer's sample grids (``Trainer._sample_grid``) and the FID image source
(``diffrep.metrics.image_sources.model_source``) seed a generator on the model's device, and torch refuses a
CUDA generator for a draw on the CPU ("Expected a 'cpu' device type for generator but found 'cuda'"). EncDiff
drew on the CPU always, so every seeded EncDiff call with a CUDA generator failed, on a GPU only.

Without a GPU, ``_ClaimsCuda`` is a CPU generator that reports ``cuda:0`` as its device, and ``_TorchRule``
applies torch's rule to it: a draw from it must be asked on a CUDA device (it is then made on the CPU from the
same generator, so the numbers are those of a CPU generator of the same seed). A draw asked elsewhere raises
torch's error.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from diffrep.methods.dyga import DyGAConfig, draw_device
from diffrep.methods.encdiff import EncDiff, EncDiffConfig
from diffrep.methods.encdiff_nets import SmallExtractorConfig
from diffrep.diffusion.schedules import NoiseScheduleConfig
from diffrep.nn.unet import UNetConfig

U, D = 4, 8


class _ClaimsCuda(torch.Generator):
    """A CPU generator reporting cuda:0 as its device (what the code under test reads)."""

    @property
    def device(self):
        return torch.device("cuda", 0)


class _TorchRule(TorchFunctionMode):
    """torch's check of a draw's device against its generator's, for ``_ClaimsCuda``; counts the draws."""

    def __init__(self):
        super().__init__()
        self.draws = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if isinstance(kwargs.get("generator"), _ClaimsCuda):
            asked = kwargs.get("device")
            if asked is None or torch.device(asked).type != "cuda":
                raise RuntimeError(f"{getattr(func, '__name__', func)}: Expected a 'cpu' device type for generator "
                                   "but found 'cuda'")
            kwargs["device"] = "cpu"
            self.draws += 1
        return func(*args, **kwargs)


def _tiny(**kw) -> EncDiffConfig:
    un = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(4,), num_heads=2, num_groups=8, context_dim=D)
    sx = SmallExtractorConfig(image_size=8, num_units=U, token_dim=D, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    return EncDiffConfig(unet=un, small_extractor=sx, first_stage=None, sample_steps=3,
                         dyga=DyGAConfig(num_units=U, token_dim=D, n_components=2, min_mass=2,
                                         gumbel_input="responsibility"),
                         schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015,
                                                      beta_end=0.0155), **kw)


def _images(n, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _seeded_calls(m, data, gen):
    """Every EncDiff entry point that draws from a generator, each with a fresh one of seed s."""
    m.eval()
    m.dyga.train()  # the Gumbel draw of the alignment (Eq. 6) runs in training mode
    out = {"loss": m.loss(data[:4], step=3, generator=gen(9))["loss"].detach(),
           "condition": m.condition(m.raw_tokens(data[:4])[1], generator=gen(4))}
    m.dyga.eval()
    out["sample"] = m.sample(2, generator=gen(1))
    out["reliance"] = torch.tensor(m.condition_reliance(data[:4], t_range=(5, 30), generator=gen(2))["reliance"])
    out["interchange"] = m.interchange(data[:2], data[2:4], units=[1], generator=gen(3), steps=2)
    return out


@pytest.mark.parametrize("eta", [0.0, 0.5])  # eta > 0: the DDIM steps draw noise too
def test_a_gpu_generator_gives_the_numbers_of_a_cpu_generator_of_the_same_seed(eta):
    m = EncDiff(_tiny(eta=eta))
    data = _images(24)
    m.refresh_anchors(data, batch_size=12)  # fitted anchors: condition() aligns with a Gumbel draw
    cpu = _seeded_calls(m, data, lambda s: torch.Generator().manual_seed(s))
    rule = _TorchRule()
    with rule:
        gpu = _seeded_calls(m, data, lambda s: _ClaimsCuda().manual_seed(s))
    assert rule.draws >= 8  # loss (t, noise, Gumbel), condition, sample (index, x_T), reliance (t, noise, perm)
    for k in cpu:
        assert torch.equal(cpu[k], gpu[k]), k


def test_draws_without_a_generator_or_with_a_cpu_one_stay_on_the_cpu():
    """The CPU draws (and numbers) of before: a seeded CPU generator repeats on every device."""
    assert draw_device(None) == torch.device("cpu")
    assert draw_device(torch.Generator()) == torch.device("cpu")
    assert draw_device(_ClaimsCuda()) == torch.device("cuda", 0)
    m = EncDiff(_tiny(conditioning="none")).eval()
    bank = torch.rand(5, U, D, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(0)  # sample(): the token indices, then x_T, from the CPU stream
    idx = torch.randint(0, 5, (2,), generator=g)
    x_T = torch.randn((2, 3, 8, 8), generator=g)
    expected = m.generate(bank[idx], x_T=x_T).clamp(-1, 1)
    assert torch.equal(m.sample(2, tokens=bank, generator=torch.Generator().manual_seed(0)), expected)
