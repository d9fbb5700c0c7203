"""The BFN output kernels (diffrep.ops.bfn_losses) against the paper's closed forms written here in float64.

Each expected value comes from Graves et al. 2023 with plain torch and math.erf, never through diffrep's helpers:
the discretised output's bin probabilities (Eq. 103-104, with the reference's clip=False renormalisation), the
noise-prediction conversion (Eq. 84), L^inf for discretised data (Eq. 122) and for discrete data (Eq. 205), and
their gradients (autograd through the closed forms). Both the native path and the forced reference path are run,
so that an argument dropped or swapped on either path changes a value (docs/kernels/bfn.md#losses)."""

import math

import pytest
import torch

from diffrep.ops import bfn, use_backend

BACKENDS = ["native", "reference"]


def _run(backend, fn, *args, **kw):
    if backend == "reference":
        with use_backend("reference"):
            return fn(*args, **kw)
    return fn(*args, **kw)


def _phi(v):
    return 0.5 * (1 + torch.erf(v / math.sqrt(2)))


def _probs(mu_x, sigma_x, K, clip):
    """Eq. 103-104: bins of width 2/K on [-1, 1]; clip=True lets the edge bins take the tails, clip=False
    renormalises by R = Phi(1) - Phi(-1) (uniform where R < 1e-5)."""
    edges = torch.linspace(-1, 1, K + 1, dtype=torch.float64)
    cdf = _phi((edges - mu_x[..., None]) / sigma_x[..., None])
    if clip:
        cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf[..., 1:-1], torch.ones_like(cdf[..., :1])], -1)
        return cdf[..., 1:] - cdf[..., :-1]
    r = (cdf[..., -1] - cdf[..., 0])[..., None]
    p = (cdf[..., 1:] - cdf[..., :-1]) / r
    return torch.where(r < 1e-5, torch.full_like(p, 1.0 / K), p)


def _centres(K):
    return (2 * torch.arange(1, K + 1, dtype=torch.float64) - 1) / K - 1


def _expected_disc_loss(out_mean, out_log_sigma, mu, t, x, s1, K, clip, noise_pred, min_var):
    tt = t.reshape(-1, *([1] * (x.dim() - 1))).expand_as(x) if t.dim() == 1 else t
    if noise_pred:  # Eq. 84 with gamma = 1 - sigma1^(2t)
        gamma = 1 - s1 ** (2 * tt)
        scale = torch.sqrt((1 - gamma) / gamma)
        mu_x = mu / gamma - scale * out_mean
        sigma_x = scale * torch.exp(out_log_sigma.clamp(-10, 10))
    else:
        mu_x, sigma_x = out_mean, torch.exp(out_log_sigma.clamp(-10, 10))
    sigma_x = sigma_x.clamp(1e-3, 10)
    x_hat = (_probs(mu_x, sigma_x, K, clip) * _centres(K)).sum(-1)
    var = s1 ** (2 * tt)
    if min_var > 0:
        var = var.clamp(min=min_var)
    return -math.log(s1) / var * (x - x_hat) ** 2  # Eq. 122


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("clip", [True, False])
def test_discretised_probs_match_eq_103_and_their_gradient(backend, clip):
    g = torch.Generator().manual_seed(1)
    mu_x = (torch.rand(3, 4, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
    sigma_x = (torch.rand(3, 4, generator=g, dtype=torch.float64) * 0.5 + 0.05).requires_grad_()
    K = 5
    got = _run(backend, bfn.discretised_probs, mu_x, sigma_x, K, clip=clip)
    mu_e, sig_e = mu_x.detach().clone().requires_grad_(), sigma_x.detach().clone().requires_grad_()
    want = _probs(mu_e, sig_e, K, clip)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    w = torch.randn(3, 4, K, generator=g, dtype=torch.float64)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(mu_x.grad, mu_e.grad, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(sigma_x.grad, sig_e.grad, rtol=1e-7, atol=1e-10)


def test_discretised_probs_without_grad_and_the_far_tail_uniform():
    # no gradient requested: the plain forward; mu_x far outside [-1, 1] with clip=False: R < 1e-5, uniform 1/K
    mu_x = torch.tensor([0.3, 40.0], dtype=torch.float64)
    sigma_x = torch.tensor([0.2, 0.5], dtype=torch.float64)
    got = bfn.discretised_probs(mu_x, sigma_x, 4, clip=False)
    torch.testing.assert_close(got, _probs(mu_x, sigma_x, 4, False), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got[1], torch.full((4,), 0.25, dtype=torch.float64))
    # clip defaults to True: the edge bin takes the whole mass
    torch.testing.assert_close(bfn.discretised_probs(mu_x, sigma_x, 4)[1],
                               torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("clip,noise_pred,min_var,per_row", [
    (True, True, -1.0, True), (False, True, -1.0, False), (True, False, -1.0, True), (False, False, 0.3, True),
    (True, True, 0.25, False)])
def test_discretised_loss_matches_eq_122_and_its_gradient(backend, clip, noise_pred, min_var, per_row):
    g = torch.Generator().manual_seed(2)
    B, D, K, s1 = 3, 4, 7, 0.02
    x = ((torch.randint(0, K, (B, D), generator=g).double() * 2 + 1) / K - 1)
    t = torch.tensor([0.15, 0.5, 0.9], dtype=torch.float64) if per_row else \
        torch.rand(B, D, generator=g, dtype=torch.float64) * 0.9 + 0.05
    tt = t[:, None].expand(B, D) if per_row else t
    gamma = 1 - s1 ** (2 * tt)
    mu = gamma * x + torch.sqrt(gamma * (1 - gamma)) * torch.randn(B, D, generator=g, dtype=torch.float64)
    out_mean = (torch.randn(B, D, generator=g, dtype=torch.float64) * (1 if noise_pred else 0.6)).requires_grad_()
    out_ls = (torch.randn(B, D, generator=g, dtype=torch.float64) * 0.5 - 1.0).requires_grad_()
    got = _run(backend, bfn.discretised_continuous_time_loss, out_mean, out_ls, mu, t, x, s1, K, clip=clip,
               noise_pred=noise_pred, min_loss_variance=min_var)
    om, ol = out_mean.detach().clone().requires_grad_(), out_ls.detach().clone().requires_grad_()
    want = _expected_disc_loss(om, ol, mu, t, x, s1, K, clip, noise_pred, min_var)
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    w = torch.rand(B, D, generator=g, dtype=torch.float64)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(out_mean.grad, om.grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out_ls.grad, ol.grad, rtol=1e-6, atol=1e-9)


def test_discretised_loss_defaults_are_clip_noise_pred_and_no_floor():
    g = torch.Generator().manual_seed(3)
    x = torch.tensor([[-0.8, 0.2, 0.6]], dtype=torch.float64)
    t = torch.tensor([0.4], dtype=torch.float64)
    mu = torch.randn(1, 3, generator=g, dtype=torch.float64) * 0.3
    eps, ls = torch.randn(1, 3, generator=g, dtype=torch.float64), torch.full((1, 3), -0.5, dtype=torch.float64)
    got = bfn.discretised_continuous_time_loss(eps, ls, mu, t, x, 0.1, 5)
    torch.testing.assert_close(got, _expected_disc_loss(eps, ls, mu, t, x, 0.1, 5, True, True, -1.0), rtol=1e-9,
                               atol=1e-12)


def test_discretised_loss_float32_inputs_give_float32_values():
    # float32 in, float32 out: the kernel works in the inputs' precision (values to float32 tolerance)
    g = torch.Generator().manual_seed(4)
    x = torch.tensor([[-0.6, 0.2], [1.0, -1.0]])
    t = torch.tensor([0.3, 0.7])
    mu = torch.randn(2, 2, generator=g) * 0.3
    out_mean, out_ls = torch.randn(2, 2, generator=g), torch.randn(2, 2, generator=g) * 0.3
    got = bfn.discretised_continuous_time_loss(out_mean, out_ls, mu, t, x, 0.05, 5, noise_pred=False)
    assert got.dtype == torch.float32
    want = _expected_disc_loss(out_mean.double(), out_ls.double(), mu.double(), t.double(), x.double(), 0.05, 5,
                               True, False, -1.0)
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=1e-6)


def _expected_discrete_loss(logits, x, t, beta1):
    K = logits.shape[-1]
    p = torch.softmax(logits, -1)
    e_x = torch.nn.functional.one_hot(x, K).double()
    tt = t.reshape(-1, *([1] * (x.dim() - 1))).expand(x.shape) if t.dim() == 1 else t
    return K * beta1 * tt * ((e_x - p) ** 2).sum(-1)  # Eq. 205


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_row", [True, False])
def test_discrete_loss_matches_eq_205_and_its_gradient(backend, per_row):
    g = torch.Generator().manual_seed(5)
    B, D, K, beta1 = 3, 4, 5, 2.5
    logits = (torch.randn(B, D, K, generator=g, dtype=torch.float64) * 2).requires_grad_()
    x = torch.randint(0, K, (B, D), generator=g)
    t = torch.tensor([0.2, 0.6, 0.95], dtype=torch.float64) if per_row else \
        torch.rand(B, D, generator=g, dtype=torch.float64)
    got = _run(backend, bfn.discrete_continuous_time_loss, logits, x, t, beta1)
    le = logits.detach().clone().requires_grad_()
    want = _expected_discrete_loss(le, x, t, beta1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    w = torch.rand(B, D, generator=g, dtype=torch.float64)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(logits.grad, le.grad, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_discrete_loss_bernoulli_logit_is_the_two_class_softmax(backend):
    # one logit l per element: p = [1 - sigmoid(l), sigmoid(l)]; with K = 2,
    # ||e_x - p||^2 = 2 (1 - p_x)^2, so L = 2 beta1 t * 2 (1 - p_x)^2
    l = torch.tensor([[[1.3], [-0.4], [0.0]]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[1, 0, 1]])
    t = torch.tensor([0.5], dtype=torch.float64)
    got = _run(backend, bfn.discrete_continuous_time_loss, l, x, t, 3.0)
    s = torch.sigmoid(l.detach()[..., 0])
    p_x = torch.where(x == 1, s, 1 - s)
    want = 2 * 3.0 * 0.5 * 2 * (1 - p_x) ** 2
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    got.sum().backward()
    # dL/dl = 4 beta1 t * 2 (1 - p_x) * (-dp_x/dl), dp_x/dl = +-s (1 - s)
    dp = torch.where(x == 1, s * (1 - s), -s * (1 - s))
    torch.testing.assert_close(l.grad[..., 0], 2 * 3.0 * 0.5 * 2 * 2 * (1 - p_x) * -dp, rtol=1e-9, atol=1e-12)


def test_discrete_loss_without_grad_and_float32():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 4, generator=g)
    x = torch.randint(0, 4, (2, 3), generator=g)
    t = torch.tensor([0.25, 0.75])
    got = bfn.discrete_continuous_time_loss(logits, x, t, 1.5)
    assert got.dtype == torch.float32 and got.shape == (2, 3)
    torch.testing.assert_close(got.double(), _expected_discrete_loss(logits.double(), x, t.double(), 1.5),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_losses_refuse_what_the_docstrings_exclude(backend):
    x = torch.tensor([[0.2, 1.5]], dtype=torch.float64)
    z = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="x"):
        _run(backend, bfn.discretised_continuous_time_loss, z, z, z, t, x, 0.1, 5)
    with pytest.raises(ValueError, match="class"):
        _run(backend, bfn.discrete_continuous_time_loss, torch.zeros(1, 2, 3, dtype=torch.float64),
             torch.tensor([[0, 3]]), t, 1.0)
    with pytest.raises(ValueError, match="t"):
        _run(backend, bfn.discrete_continuous_time_loss, torch.zeros(1, 2, 3, dtype=torch.float64),
             torch.tensor([[0, 2]]), torch.tensor([1.5], dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="sigma_x"):
        _run(backend, bfn.discretised_probs, z, torch.tensor([[0.1, 0.0]], dtype=torch.float64), 4)


def test_native_refusals_name_the_function_and_the_problem():
    z = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    nan = torch.tensor([[0.1, float("nan")]], dtype=torch.float64)
    cases = [
        (lambda: bfn.discretised_continuous_time_loss(z, z, z, t, torch.tensor([[0.2, 1.5]], dtype=torch.float64),
                                                      0.1, 5), r"^discretised_continuous_time_loss: x must lie in"),
        (lambda: bfn.discretised_continuous_time_loss(z, z, nan, t, z, 0.1, 5),
         r"^discretised_continuous_time_loss: out_mean, out_log_sigma, mu or x contains NaN or infinite values"),
        (lambda: bfn.discrete_continuous_time_loss(torch.zeros(1, 2, 3, dtype=torch.float64), torch.tensor([[0, 3]]),
                                                   t, 1.0), r"^discrete_continuous_time_loss: x holds a class outside"),
        (lambda: bfn.discrete_continuous_time_loss(torch.tensor([[[0.0, float("nan"), 0.0]]], dtype=torch.float64),
                                                   torch.tensor([[0]]), t, 1.0),
         r"^discrete_continuous_time_loss: logits contain NaN or infinite values"),
        (lambda: bfn.discretised_probs(z, torch.tensor([[0.1, 0.0]], dtype=torch.float64), 4),
         r"^discretised_probs: sigma_x must be > 0"),
        (lambda: bfn.discretised_probs(nan, z + 1, 4), r"^discretised_probs: mu_x or sigma_x contains NaN or infinite"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("which", [0, 1])
def test_discretised_loss_gradient_when_only_one_output_requires_it(which):
    # only out_log_sigma (or only out_mean) requires a gradient: the kernel must still return it
    g = torch.Generator().manual_seed(7)
    x = torch.tensor([[-0.6, 0.2, 1.0]], dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    mu = torch.randn(1, 3, generator=g, dtype=torch.float64) * 0.3
    outs = [torch.randn(1, 3, generator=g, dtype=torch.float64), torch.randn(1, 3, generator=g, dtype=torch.float64)]
    outs[which].requires_grad_()
    bfn.discretised_continuous_time_loss(outs[0], outs[1], mu, t, x, 0.1, 5).sum().backward()
    ref_outs = [o.detach().clone() for o in outs]
    ref_outs[which].requires_grad_()
    _expected_disc_loss(ref_outs[0], ref_outs[1], mu, t, x, 0.1, 5, True, True, -1.0).sum().backward()
    torch.testing.assert_close(outs[which].grad, ref_outs[which].grad, rtol=1e-7, atol=1e-10)


def test_discretised_probs_mixed_dtypes_non_contiguous_and_sigma_only_gradient():
    # float32 mu_x with a float64, non-contiguous sigma_x: promoted to float64 (the checked path), and a gradient
    # requested for sigma_x alone still reaches it
    mu_x = torch.tensor([[-0.7, 0.1], [0.5, 0.9]], dtype=torch.float32)
    sigma_x = torch.tensor([[0.3, 0.2], [0.1, 0.4]], dtype=torch.float64).t().requires_grad_()
    got = bfn.discretised_probs(mu_x, sigma_x, 3)
    assert got.dtype == torch.float64
    s = sigma_x.detach().clone().requires_grad_()
    want = _probs(mu_x.double(), s, 3, True)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    w = torch.arange(12, dtype=torch.float64).reshape(2, 2, 3)
    (got * w).sum().backward()
    (want * w).sum().backward()
    torch.testing.assert_close(sigma_x.grad, s.grad, rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="mu_x is empty"):
        bfn.discretised_probs(torch.empty(0, dtype=torch.float32), torch.empty(0, dtype=torch.float64), 3)


def test_discretised_loss_promotes_mixed_dtypes_to_float64():
    x = torch.tensor([[-0.6, 0.2]], dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    mu = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
    out_mean, out_ls = torch.tensor([[0.3, -0.4]]), torch.tensor([[-1.0, 0.2]])  # float32
    got = bfn.discretised_continuous_time_loss(out_mean, out_ls, mu, t, x, 0.1, 5)
    assert got.dtype == torch.float64
    want = _expected_disc_loss(out_mean.double(), out_ls.double(), mu, t, x, 0.1, 5, True, True, -1.0)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
