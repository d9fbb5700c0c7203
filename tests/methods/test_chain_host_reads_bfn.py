"""The multi-beta latent denoiser's chain, the BFN sampler and reverse chain, and ParamReL's chains run their steps
on the times they build themselves without reading the device back (docs/architecture.md "Host synchronisation
and the non-finite-loss check"): their host reads do not grow with the number of steps, and their numbers are
those of a loop written here with the checked public single steps.

Reads per call on tiny models (a [2, 1, 3, 3] batch for the BFN parts), before -> after (2 / 6 steps):

=================================================  =============  =====  =====================================
chain                                              before         after  the reads left
=================================================  =============  =====  =====================================
LatentDenoiser.sample (vector latent)              10 / 14        8      the inputs' and grid checks
LatentDenoiser.denoise, per-example ranges         14 / 18        14     as above, the ranges (one read)
bfn.sample, Delta output (noise prediction)        16 / 40        10     the first step and the final call
bfn.sample, discretised Normal output              25 / 61        16     as above
bfn.sample, categorical output                     6 / 18         3      as above
bfn.reverse_chain, continuous / discrete           8/28, 5/9      7, 4   the start state; the first step
ParamReL.sample, discrete, z from the prior        9 / 25         3      as bfn.sample
ParamReL.reverse_sample / decode, discrete         12/24, 11/27   8, 3   as the BFN chains
=================================================  =============  =====  =====================================
"""

from __future__ import annotations

import pytest
import torch

from helpers import bfn_chain_parts, host_reads as _reads, perturbed, tiny_paramrel

from diffrep.bfn import DeltaOutput
from diffrep.bfn import reverse_chain, sample
from diffrep.bfn.flows import step_times


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- multi-beta (Algorithm 2)
def _denoiser(N: int, **kw):
    from diffrep.methods.multibeta import LatentDenoiser, LatentDenoiserConfig

    torch.manual_seed(0)
    m = LatentDenoiser(LatentDenoiserConfig(num_steps=N, **kw))
    perturbed(m, 0.2)
    shape = (N + 1,)
    m.set_schedule(torch.sqrt(1e-3 + torch.arange(shape[0], dtype=torch.float32) / N))
    return m.eval()


@pytest.mark.parametrize("kw", [dict(latent_dim=3, hidden=16, depth=1),
                                dict(latent_dim=3, hidden=16, depth=1, sampler="ancestral"),
                                dict(latent="spatial", latent_channels=2, latent_size=4)],
                         ids=["vector", "ancestral", "spatial"])
def test_latent_denoiser_chain_reads_a_fixed_number_and_gives_the_public_steps_numbers(kw):
    if kw.get("latent") == "spatial":
        from diffrep.nn.unet import UNetConfig

        kw = {**kw, "unet": UNetConfig(image_size=4, in_channels=2, out_channels=2, model_channels=8,
                                       channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), num_groups=4,
                                       num_outputs=2)}
    counts = {}
    for N in (2, 6):
        m = _denoiser(N, **kw)
        counts[N], out = _reads(lambda: m.sample(3, generator=_g()))
        g = _g()  # Algorithm 2 written out with the checked public step
        z = torch.randn((3,) + m.config.latent_shape, generator=g)
        for i in range(N, 0, -1):
            z = m.step(z, i, generator=g)
        assert torch.equal(out, z)
    assert counts[2] == counts[6]  # before: one read of the time embedding per step


@pytest.mark.parametrize("sampler", ["alg2", "ancestral"])
def test_latent_denoiser_per_example_ranges_read_a_fixed_number_and_give_the_public_steps_numbers(sampler):
    counts = {}
    for N in (2, 6):
        m = _denoiser(N, latent_dim=3, hidden=16, depth=1, sampler=sampler)
        tau = m.config.tau
        hi, lo = [N, N - 1, N, 1], [0, 0, 1, 0]  # each example's own grid range
        z0 = torch.randn(4, 3, generator=_g(1))
        counts[N], out = _reads(lambda: m.denoise(z0, torch.tensor(hi) * tau, torch.tensor(lo) * tau, generator=_g()))
        g, z = _g(), z0.clone()  # the per-example chain written out: the batch's noise drawn at every grid step,
        with torch.no_grad():   # the examples inside their range stepped together
            for i in range(N, 0, -1):
                xi = torch.randn(z.shape, generator=g)
                rows = torch.tensor([hi[b] >= i > lo[b] for b in range(4)])
                z[rows] = m.step(z[rows], i, xi=xi[rows])
        assert torch.equal(out, z)
    assert counts[2] == counts[6]  # before: one read per grid step (the rows a step moves)


def test_public_time_embedding_checks_stay():
    from diffrep.methods.multibeta_nets import BetaEmbedding, LatentMLP
    from diffrep.nn.layers import timestep_embedding

    bad = torch.tensor([0.5, float("nan")])
    with pytest.raises(ValueError, match="finite timesteps"):
        timestep_embedding(bad, 8)
    with pytest.raises(ValueError, match="finite timesteps"):
        BetaEmbedding(4, base=8)(bad)
    with pytest.raises(ValueError, match="finite timesteps"):
        LatentMLP(2, 8, 1, 1000.0)(torch.zeros(2, 2), bad)


# ---------------------------------------------------------------- BFN sampler and reverse chain


def _sample_by_public_steps(flow, output, net, n, generator, x_tilde="sample", sender_noise=True):
    """Graves' n-step sampler written out with the checked public calls (docs/kernels/bfn.md#sampler)."""
    times = step_times(n)
    state = flow.prior((2, 1, 3, 3))
    for i in range(1, n + 1):
        t = torch.full((2,), times[i - 1], dtype=torch.float64)
        dist = output(net(state, t), state, t)
        xt = dist.sample(generator) if x_tilde == "sample" else dist.mean
        state, _ = flow.step(state, xt, times[i], generator, sender_noise=sender_noise)
    t = torch.ones(2, dtype=torch.float64)
    return output(net(state, t), state, t).mode, state


@pytest.mark.parametrize("kind", ["delta", "dnorm", "categorical"])
@pytest.mark.parametrize("x_tilde,sender_noise", [("sample", True), ("mean", False)])
def test_bfn_sample_reads_a_fixed_number_and_gives_the_public_steps_numbers(kind, x_tilde, sender_noise):
    flow, output, net = bfn_chain_parts(kind)
    counts = {}
    for n in (2, 6):
        counts[n], (x, st) = _reads(lambda: sample(flow, output, net, flow.prior((2, 1, 3, 3)), n, generator=_g(),
                                                   x_tilde=x_tilde, sender_noise=sender_noise))
        rx, rst = _sample_by_public_steps(flow, output, net, n, _g(), x_tilde, sender_noise)
        assert torch.equal(x, rx) and torch.equal(st.params, rst.params) and torch.equal(st.t, rst.t)
    assert counts[2] == counts[6]  # before: 4 to 7 per step


@pytest.mark.parametrize("kind", ["delta", "categorical"])
def test_bfn_reverse_chain_reads_a_fixed_number_and_gives_the_public_steps_numbers(kind):
    from diffrep.bfn.sampler import _accuracy

    flow, output, net = bfn_chain_parts(kind)
    x = torch.rand(2, 1, 3, 3, generator=_g(3)) * 2 - 1 if kind == "delta" else torch.randint(0, 3, (2, 1, 3, 3))
    counts = {}
    for n in (2, 6):
        counts[n], sub = _reads(lambda: reverse_chain(flow, output, net, x, n))
        times = step_times(n)  # the inverse chain written out with the public inverse_step
        state = flow.mean_state(flow.prepare_data(x), 1.0)
        xh = x.double() if kind == "delta" else torch.nn.functional.one_hot(x, 3).double()
        for s in range(1, n + 1):
            a = _accuracy(flow, times[n - s + 1], times[n - s], state)
            state = flow.inverse_step(state, flow.sender_mean(xh, a), times[n - s])
            t = torch.full((2,), times[n - s], dtype=torch.float64)
            xh = output(net(state, t), state, t).mean.double()
        assert torch.equal(sub.params, state.params) and torch.equal(sub.t, state.t)
    assert counts[2] == counts[6]


def test_bfn_public_steps_keep_their_checks_and_a_chain_still_refuses_a_nan_network():
    flow, output, _ = bfn_chain_parts("delta")
    st = flow.prior((2, 1, 3, 3))
    with pytest.raises(ValueError, match=r"t_next must lie in \[0, 1\]"):
        flow.step(st, torch.zeros(2, 1, 3, 3), float("nan"))
    with pytest.raises(ValueError, match="later than the state's time"):
        flow.step(flow.step(st, torch.zeros(2, 1, 3, 3), 0.5)[0], torch.zeros(2, 1, 3, 3), 0.25)
    with pytest.raises(ValueError, match="net_out contains NaN"):
        output(torch.full((2, 1, 3, 3), float("nan")), st, torch.zeros(2, dtype=torch.float64))
    calls = []

    def nan_at_step_3(s, t):  # a NaN at an unchecked middle step is still refused, by the update kernel
        calls.append(1)
        return torch.full((2, 1, 3, 3), float("nan") if len(calls) == 3 else 0.1)

    for noise in (True, False):
        calls.clear()
        with pytest.raises(ValueError, match="contains NaN or infinite values"):
            sample(flow, DeltaOutput(1e-3, noise_pred=False), nan_at_step_3, flow.prior((2, 1, 3, 3)), 5,
                   x_tilde="mean", sender_noise=noise)
        assert len(calls) == 3


# ---------------------------------------------------------------- ParamReL
@pytest.mark.parametrize("kind,fields", [("discrete", {}), ("continuous", {"encoder": "hyper"})])
def test_paramrel_chains_read_a_fixed_number_and_give_the_public_steps_numbers(kind, fields):
    from diffrep.bfn.model import model_dtypes

    counts = {}
    for steps in (2, 6):
        m = perturbed(tiny_paramrel(kind, steps=steps, **fields)).eval()
        x = torch.rand(2, 1, 8, 8, generator=_g(1)) * 2 - 1
        x = x.sign() if kind == "discrete" else x
        c_s, out = _reads(lambda: m.sample(2, z_source="encoder", generator=_g()))
        c_r, rev = _reads(lambda: m.reverse_sample(x))
        c_d, dec = _reads(lambda: m.decode(rev))
        counts[steps] = (c_s, c_r, c_d)
        with torch.no_grad():  # ParamReL's generation written out with the public posterior, decoder and steps
            g, times = _g(), step_times(steps)

            def z_draw(state, t):  # SepDiff Eq. 2: z_t ~ q(z_t | theta_t, t), drawn before the step's other draws
                mean, logvar = m.posterior(state, t)
                return mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g)

            state = m.flow.prior((2, 1, 8, 8), dtype=model_dtypes(m)[1])
            for i in range(1, steps + 1):
                t = torch.full((2,), times[i - 1], dtype=torch.float64)
                dist = m.output(m.decode_net(state, t, z_draw(state, t)), state, t)
                state, _ = m.flow.step(state, dist.sample(g), times[i], g, sender_noise=m.config.sender_noise)
            t = torch.ones(2, dtype=torch.float64)
            ref = m._to_images(m.output(m.decode_net(state, t, z_draw(state, t)), state, t).mode)
            assert torch.equal(out, ref)
            state = rev.subcode  # decode: the stored code z_s at t = s/n, the output mean, no sender noise
            for i in range(1, steps + 1):
                t = torch.full((2,), times[i - 1], dtype=torch.float64)
                xm = m.output(m.decode_net(state, t, rev.z[i - 1]), state, t).mean
                state, _ = m.flow.step(state, xm, times[i], sender_noise=False)
            t = torch.ones(2, dtype=torch.float64)
            assert m.config.final == "mode"
            assert torch.equal(dec, m._to_images(m.output(m.decode_net(state, t, rev.z[steps]), state, t).mode))
    assert counts[2] == counts[6]  # before: 3 to 11 reads per step
