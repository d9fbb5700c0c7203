"""ParamReL's loss and posterior, pinned where the objective tests leave freedom: the
reparameterised z is mean + exp(logvar / 2) eps with eps the generator's next N(0, 1) draw after
the flow's sample; the reconstruction term follows the loss's generator; the x-encoder of a
discrete (categorical) flow reads the data values themselves (only the discretised flow
quantises, issue 17); refused arguments are named. Written for the mutation audit of 2026-12-07
(benches/results/mutation_contract_audit_2026-12-07.md)."""

import pytest
import torch

from helpers import perturbed, tiny_paramrel as tiny

G = torch.Generator().manual_seed


def _images(n, seed):
    return torch.rand(n, 1, 8, 8, generator=G(seed)) * 2 - 1


def test_z_is_the_mean_plus_sigma_times_the_generators_next_draw(monkeypatch):
    m = perturbed(tiny("continuous", latent=6))
    gen, seen = G(3), {}
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        seen["post"], seen["gen_state"] = [o.detach() for o in out], gen.get_state()
        return out

    def spy_dec(state, t, z):
        seen["z"] = z.detach()
        return dec(state, t, z)

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    m.loss(_images(5, 1), generator=gen)
    mean, logvar = seen["post"]
    eps = torch.randn(mean.shape, generator=torch.Generator().set_state(seen["gen_state"]))
    assert float(eps.abs().max()) > 0.5  # a draw, not zeros
    torch.testing.assert_close(seen["z"], mean + torch.exp(0.5 * logvar) * eps, rtol=1e-6, atol=1e-6)


def test_reconstruction_term_follows_the_loss_generator():
    """The reconstruction loss samples theta_1 with the loss's generator: the same generator seed
    gives the same value whatever the global RNG."""
    m = perturbed(tiny("continuous", report_reconstruction=True))
    x, vals = _images(4, 2), []
    for global_seed in (10, 11):
        torch.manual_seed(global_seed)
        with torch.no_grad():
            vals.append(float(m.loss(x, generator=G(5))["recon_loss"]))
    assert vals[0] == vals[1]


def test_discrete_x_encoder_reads_the_data_values():
    """Categorical data are not moved to class indices or bin centres before the x-encoder: q_phi
    reads x in [-1, 1] itself (the encoder applied to x by hand)."""
    m = perturbed(tiny("discrete", encoder_input="x")).eval()
    x = _images(3, 4).sign()
    t = torch.full((3,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        mean, logvar = m.posterior(None, t, x=x)
        want = m.encoder.gaussian_params(x.float(), m._t_net(t)).chunk(2, dim=1)
    assert torch.equal(mean, want[0]) and torch.equal(logvar, want[1])


def test_refused_arguments_are_named():
    m = tiny("continuous")
    with pytest.raises(TypeError) as e:
        m.loss("not images")
    assert str(e.value).startswith("ParamReL.loss: batch must be an image tensor")
    with pytest.raises(ValueError, match=r"^step must be a non-negative int, got -1$"):
        m.loss(_images(2, 0), step=-1)
    mx = tiny("continuous", encoder_input="x")
    with pytest.raises(ValueError) as e:
        mx.posterior(None, torch.full((2,), 0.5, dtype=torch.float64))
    assert str(e.value) == ("encoder_input='x' encodes the clean data, which generation does not have; "
                            "use z_source='prior_per_step' or 'prior_fixed'")
