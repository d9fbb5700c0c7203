"""Cross-attention at every level (issue 17 item 4) and consistent hyper-feature readings (item 5)."""

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.nn.layers import SpatialTransformer

from helpers import tiny_paramrel as tiny


def _perturbed(m, scale=0.1):
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return m.eval()


def _levels_reading_z(m):
    """Which decoder blocks' outputs change when only z changes (the input theta and t fixed)."""
    d = m.decoder
    blocks = list(d.input_blocks) + [d.middle_block] + list(d.output_blocks)
    outs = {}

    def hook(i):
        def f(mod, inp, out):
            outs.setdefault(i, []).append(out.detach().clone())
        return f

    handles = [b.register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    state = m.flow.sample(m.flow.prepare_data(x), 0.5, generator=torch.Generator().manual_seed(2))
    t = torch.full((2,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        for seed in (3, 4):
            m.decode_net(state, t, torch.randn(2, m.config.latent_dim, generator=torch.Generator().manual_seed(seed)))
    for h in handles:
        h.remove()
    n_in = len(d.input_blocks)
    return [i - n_in for i, (a, b) in sorted(outs.items()) if not torch.allclose(a, b)], n_in


def test_xattn_attends_at_every_level_and_bottleneck_only_is_an_option():
    m = _perturbed(tiny("continuous", cond="xattn", xattn_tokens=2))
    assert m.config.xattn_levels == "all" and set(m.config.unet.attention_resolutions) == {8, 4}
    kinds = [[type(layer) for layer in blk] for blk in m.decoder.input_blocks]
    # a cross-attention block after every res block of the down path (8 px and 4 px levels), the middle, the up path
    assert sum(SpatialTransformer in k for k in kinds) == 2
    assert sum(isinstance(layer, SpatialTransformer) for layer in m.decoder.middle_block) == 1
    assert sum(any(isinstance(layer, SpatialTransformer) for layer in blk) for blk in m.decoder.output_blocks) == 4
    changed, n_in = _levels_reading_z(m)
    # the first down block at full resolution (index 1 of input_blocks) already reads z
    assert changed[0] == 1 - n_in
    bott = _perturbed(tiny("continuous", cond="xattn", xattn_tokens=2, xattn_levels="bottleneck"))
    assert bott.config.unet.attention_resolutions == () and bott.config.unet.middle_attention
    changed_b, _ = _levels_reading_z(bott)
    assert changed_b[0] == 0  # nothing before the middle block depends on z
    with pytest.raises(ConfigError, match="unet.attention_resolutions"):
        type(m.config)(**{**{f: getattr(m.config, f) for f in m.config.__dataclass_fields__},
                          "xattn_levels": "bottleneck"})


def test_hyper_encoder_reads_the_same_features_in_training_evaluation_and_sampling():
    """Issue 17 item 5: the posterior the loss uses at (theta_t, t) is the one evaluation computes at
    (theta_t, t), and every sampling step's z is the posterior at that step's state."""
    m = _perturbed(tiny("continuous", encoder="hyper", steps=3))
    m.eval()
    seen = []
    orig = m.posterior

    def spy(state, t, **kw):
        out = orig(state, t, **kw)
        seen.append((state, t, out[0].detach().clone()))
        return out

    m.posterior = spy
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    m.loss((x, None), generator=torch.Generator().manual_seed(6))
    state, t, mean_train = seen[-1]
    m.posterior = orig
    assert torch.allclose(mean_train, orig(state, t)[0], atol=1e-6)
    # sampling (z_source="encoder_mean"): the z fed to the decoder at each step is the current state's posterior mean
    used = []
    dec = m.decode_net

    def spy_dec(state, t, z, **kw):  # kw: the chain's check_time
        if m._captured is None:  # not the feature pass inside posterior()
            used.append((state, t, z.clone()))
        return dec(state, t, z, **kw)

    m.decode_net = spy_dec
    m.sample(2, z_source="encoder_mean", generator=torch.Generator().manual_seed(0))
    m.decode_net = dec
    calls = used
    assert len(calls) == 4  # 3 steps + the final call
    for state, t, z in calls[1:]:  # the first call's cache was empty before the fix too
        assert torch.allclose(z, m.posterior(state, t)[0], atol=1e-6)
