import pytest
import torch

from diffrep.nn import gaussian_kl


def test_gaussian_kl_matches_closed_form_and_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 4, generator=g, dtype=torch.float64)
    per_dim = gaussian_kl(mu, logvar)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(per_dim, ref)
    torch.testing.assert_close(per_dim, 0.5 * (mu ** 2 + logvar.exp() - logvar - 1))
    torch.testing.assert_close(gaussian_kl(mu, logvar, reduction="sum"), ref.sum(-1))
    torch.testing.assert_close(gaussian_kl(mu, logvar, reduction="mean"), ref.mean())
    assert float(gaussian_kl(torch.zeros(3), torch.zeros(3), reduction="sum")) == 0.0
    with pytest.raises(ValueError, match="reduction"):
        gaussian_kl(mu, logvar, reduction="batchmean")
    with pytest.raises(ValueError, match="shape"):
        gaussian_kl(mu, logvar[:, :2])


def test_old_homes_keep_their_meaning():
    from diffrep.methods import paramrel_nets, sami

    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    assert sami.gaussian_kl is gaussian_kl  # SAMI's was already per dimension
    with pytest.warns(DeprecationWarning, match="reduction='sum'"):
        old = paramrel_nets.gaussian_kl(mu, logvar)  # ParamReL's summed over latent dimensions
    torch.testing.assert_close(old, gaussian_kl(mu, logvar, reduction="sum"))
