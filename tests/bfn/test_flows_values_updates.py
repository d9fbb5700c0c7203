"""The Bayesian flows of diffrep.bfn.flows against the BFN paper's closed forms (Graves et al. 2023), written here:
continuous updates y = x~ + eps / sqrt(alpha), mu' = (rho mu + alpha y) / (rho + alpha), rho(t) = sigma1^(-2t)
(Eqs. 49-50, 86); discrete updates y = alpha (K e - 1) + sqrt(alpha K) eps, theta' = softmax(log theta + y),
beta(t) = beta1 t^2 (Eqs. 162, 171-172, 185); the network inputs 2 theta - 1 with the classes in channels
(docs/methods/paramrel.md). Found by mutation testing (benches/results/mutation_gaps_2026-12-08.md)."""

import math

import pytest
import torch

from diffrep.bfn.flows import ContinuousFlow, DiscreteFlow, FlowState, state_dtype, step_times

F64 = torch.float64


def _rho(t, sigma1=0.02):
    return sigma1 ** (-2 * t)


def test_continuous_step_and_inverse_closed_form():
    torch.manual_seed(0)
    f = ContinuousFlow(0.02)
    mu, t = torch.randn(2, 3, dtype=F64), torch.tensor([0.2, 0.5], dtype=F64)
    xt, eps = torch.rand(2, 3, dtype=F64), torch.randn(2, 3, dtype=F64)
    rho, alpha = _rho(t), _rho(0.7) - _rho(t)
    new, y = f.step(FlowState(mu, t), xt, 0.7, noise=eps)
    torch.testing.assert_close(y, xt + eps / alpha.sqrt()[:, None])
    torch.testing.assert_close(new.params, (rho[:, None] * mu + alpha[:, None] * y) / (rho + alpha)[:, None])
    torch.testing.assert_close(new.t, torch.full((2,), 0.7, dtype=F64))
    # sender noise is on by default: a generator's draw, not the mean
    g = torch.Generator().manual_seed(1)
    _, y_noisy = f.step(FlowState(mu, t), xt, 0.7, g)
    assert (y_noisy - xt).abs().min() > 0
    # a float64 x~ on a float32 state is read in the state's precision
    new32, y32 = f.step(FlowState(mu.float(), t), xt, 0.7, noise=eps.float())
    assert new32.params.dtype == torch.float32 and y32.dtype == torch.float32
    # the exact inverse returns the earlier state; y of another precision is cast to the state's
    back = f.inverse_step(new, y.float().double(), t)
    torch.testing.assert_close(back.params, (new.params * (rho + alpha)[:, None] - alpha[:, None] * y.float().double())
                               / rho[:, None])
    back32 = f.inverse_step(new32, y.double(), t)
    assert back32.params.dtype == torch.float32


def test_continuous_state_dtypes_and_prior():
    f = ContinuousFlow(0.1)
    p = f.prior((2, 3))
    assert p.params.dtype == torch.float32 and p.t.dtype == F64 and p.params.abs().sum() == 0 and p.t.shape == (2,)
    assert f.prior((2, 3), dtype=F64).params.dtype == F64
    x = torch.rand(2, 3, dtype=F64) * 2 - 1
    m = f.mean_state(x, 0.5, dtype=torch.float32)  # gamma(t) x in the asked precision
    assert m.params.dtype == torch.float32
    torch.testing.assert_close(m.params, ((1 - 0.1 ** (2 * 0.5)) * x).float())
    s = f.sample(x, 0.5, torch.Generator().manual_seed(0), dtype=torch.float32)
    assert s.params.dtype == torch.float32 and s.t.dtype == F64
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 1\]"):
        f.sample(x, 1.5)
    assert f.data_to_float(x) is x and f.data_to_float(x, torch.float32).dtype == torch.float32
    with pytest.raises(TypeError, match=r"x must be a float tensor \(continuous data\), got torch.int64"):
        f.data_to_float(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"x must be a float tensor \(continuous data\), got list"):
        f.data_to_float([0.0])
    with pytest.raises(TypeError, match=r"x_tilde must be a float tensor, got torch.int64"):
        f.sender_mean(torch.zeros(2, 3, dtype=torch.long), 1.0)
    with pytest.raises(TypeError, match=r"x_tilde must be a float tensor, got list"):
        f.sender_mean([0.0], 1.0)
    with pytest.raises(ValueError, match=r"^x contains NaN or infinite values$"):
        f.mean_state(torch.full((2, 3), float("nan")), 0.5)


def test_discrete_step_closed_forms():
    torch.manual_seed(0)
    d = DiscreteFlow(3, 1.5)  # beta(t) = 2.25 t^2
    lp = torch.log_softmax(torch.randn(2, 4, 3, dtype=F64), -1)
    t = torch.tensor([0.2, 0.5], dtype=F64)
    alpha = (2.25 * 0.7 ** 2 - 2.25 * t ** 2)[:, None, None]
    eps = torch.randn(2, 4, 3, dtype=F64)
    cls = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    e = torch.nn.functional.one_hot(cls, 3).to(F64)
    # integer classes with sender noise (the native path), a soft one-hot with sender noise, and no noise
    for x_tilde, noisy in ((cls, True), (e * 0.8 + 0.2 / 3, True), (cls, False), (e * 0.5 + 0.5 / 3, False)):
        xe = x_tilde.to(F64) if x_tilde.is_floating_point() else e
        want_y = alpha * (3 * xe - 1) + ((alpha * 3).sqrt() * eps if noisy else 0)
        new, y = d.step(FlowState(lp, t), x_tilde, 0.7, sender_noise=noisy, noise=eps if noisy else None)
        torch.testing.assert_close(y, want_y)
        torch.testing.assert_close(new.params, torch.log_softmax(lp + want_y, -1))
        back = d.inverse_step(new, y.float(), t)  # y of another precision: cast to the state's
        torch.testing.assert_close(back.params, torch.log_softmax(new.params - y.float().double(), -1))
    # a soft one-hot without a given noise: the generator's draws in the state's precision
    g = torch.Generator().manual_seed(3)
    _, y = d.step(FlowState(lp, t), e, 0.7, torch.Generator().manual_seed(3))
    torch.testing.assert_close(y, alpha * (3 * e - 1) + (alpha * 3).sqrt() * torch.randn(lp.shape, generator=g, dtype=F64))
    # a float32 state keeps float32 throughout
    new32, y32 = d.step(FlowState(lp.float(), t), e, 0.7, sender_noise=False)
    assert new32.params.dtype == torch.float32 and y32.dtype == torch.float32
    with pytest.raises(ValueError, match=r"^step: t_next must be later than the state's time$"):
        d.step(FlowState(lp, t), cls, t)  # alpha = 0
    with pytest.raises(ValueError, match=r"^step: t_next must be later than the state's time$"):
        ContinuousFlow(0.1).step(FlowState(lp[..., 0], t), lp[..., 0], t)
    # classes 0 and 1 only: the one-hot still has K = 3 columns
    few = torch.zeros(2, 4, dtype=torch.long)
    new, y = d.step(FlowState(lp, t), few, 0.7, sender_noise=False)
    torch.testing.assert_close(y, alpha * (3 * torch.nn.functional.one_hot(few, 3).to(F64) - 1))
    # the native path and the inverse keep a float32 state's precision
    new32, y32 = d.step(FlowState(lp.float(), t), cls, 0.7, noise=eps.float())
    assert new32.params.dtype == torch.float32 and y32.dtype == torch.float32
    assert d.inverse_step(new32, y32.double(), t).params.dtype == torch.float32
    # sampling follows the caller's generator
    x = torch.tensor([[0, 1, 2, 1]])
    a1 = d.sample(x, 0.5, torch.Generator().manual_seed(9)).params
    torch.testing.assert_close(a1, d.sample(x, 0.5, torch.Generator().manual_seed(9)).params)
    assert not torch.equal(a1, d.sample(x, 0.5, torch.Generator().manual_seed(10)).params)


def test_discrete_sender_mean_and_its_checks():
    d = DiscreteFlow(3, 1.0)
    x = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype=F64)  # (B, K): the smallest x~
    a = torch.tensor([[0.5], [2.0]], dtype=F64)
    torch.testing.assert_close(d.sender_mean(x, a), a * (3 * x - 1))
    x3 = torch.rand(2, 4, 3, dtype=F64)
    assert d.sender_mean(x3, torch.ones(2, 1, 1, dtype=F64)).shape == (2, 4, 3)
    for bad in (torch.ones(3, 1, dtype=F64), torch.ones(2, 2, dtype=F64)):
        with pytest.raises(ValueError, match=r"^alpha must be a number or have shape \(2, 1, \.\.\.\)"):
            d.sender_mean(x3, bad)
    with pytest.raises(TypeError, match=r"x_tilde must be a float tensor \(B, \.\.\., K\), got torch.int64"):
        d.sender_mean(torch.zeros(2, 3, dtype=torch.long), 1.0)
    with pytest.raises(TypeError, match=r"x_tilde must be a float tensor \(B, \.\.\., K\), got list"):
        d.sender_mean([0.0], 1.0)
    with pytest.raises(ValueError, match=r"x_tilde must hold the K = 3 classes last, got shape \(2, 4\)"):
        d.sender_mean(torch.zeros(2, 4, dtype=F64), 1.0)
    with pytest.raises(TypeError, match=r"^alpha must be a real tensor, got float"):
        d.sender_mean(x, 1.0)


def test_discrete_mean_state_network_input_and_channels():
    d = DiscreteFlow(3, 2.0)  # beta(t) = 4 t^2
    cls = torch.tensor([[[[0, 2]]], [[[1, 1]]]])  # (B=2, C=1, H=1, W=2)
    m = d.mean_state(cls, torch.tensor([0.5, 1.0]))
    b = torch.tensor([1.0, 4.0], dtype=F64).reshape(2, 1, 1, 1, 1)
    e = torch.nn.functional.one_hot(cls, 3).to(F64)
    torch.testing.assert_close(m.params, torch.log_softmax(b * (3 * e - 1), -1))
    # K > 2: 2 theta - 1 with class k of channel c in input channel c K + k
    lp = torch.log_softmax(torch.randn(2, 2, 2, 3, 3, dtype=F64), -1)  # (B, C, H, W, K)
    got = d.network_input(FlowState(lp, torch.zeros(2, dtype=F64)), F64)
    assert got.shape == (2, 6, 2, 3)
    for c in range(2):
        for k in range(3):
            torch.testing.assert_close(got[:, c * 3 + k], 2 * lp[:, c, ..., k].exp() - 1)
    assert d.network_input(FlowState(lp, torch.zeros(2, dtype=F64))).dtype == torch.float32
    half = d.network_input(FlowState(lp, torch.zeros(2, dtype=F64)), torch.float16)  # computed in float32, given in half
    assert half.dtype == torch.float16 and torch.equal(half, (2 * lp.float().exp() - 1).movedim(-1, 2).reshape(2, 6, 2, 3).half())
    assert d.input_channels(2) == 6 and DiscreteFlow(2, 1.0).input_channels(2) == 2
    p = d.prior((2, 1, 2))
    assert p.t.dtype == F64 and torch.allclose(p.params, torch.full((2, 1, 2, 3), -math.log(3)))


def test_discrete_data_mapping_and_checks():
    d = DiscreteFlow(5, 1.0)
    x = torch.tensor([[-3.0, -1.0, -0.5, 0.0, 0.49, 1.0, 4.0]])
    # round((clamp(x, -1, 1) + 1) (K - 1) / 2)
    assert d.prepare_data(x).tolist() == [[0, 0, 1, 2, 3, 4, 4]]
    assert d.prepare_data(torch.tensor([[True, False]])).tolist() == [[1, 0]]
    assert d.prepare_data(torch.tensor([[0, 4]])).tolist() == [[0, 4]]
    for bad in (torch.tensor([[0, 5]]), torch.tensor([[-1, 2]])):
        with pytest.raises(ValueError, match=r"integer classes must lie in 0\.\.K-1 = 0\.\.4, got values in \[-?\d, \d\]"):
            d.prepare_data(bad)
    with pytest.raises(ValueError, match=r"got values in \[0, 5\]"):
        d.prepare_data(torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match=r"^x \(discrete data\) must be a tensor \(B, \.\.\.\), got Tensor\(3,\)"):
        d.prepare_data(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^x \(discrete data\) must be a tensor \(B, \.\.\.\), got list\(\)"):
        d.prepare_data([[0]])
    with pytest.raises(TypeError, match=r"must be real .*, got torch.complex64"):
        d.prepare_data(torch.zeros(2, 2, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2, got 2\.0"):
        DiscreteFlow(2.0, 1.0)
    with pytest.raises(ValueError, match=r"sqrt_beta1 must be > 0, got 0"):
        DiscreteFlow(2, 0)
    with pytest.raises(TypeError, match=r"^classes must be a real tensor, got list"):
        d.data_to_float([0])


def test_shape_and_time_messages_name_the_argument():
    f, d = ContinuousFlow(0.1), DiscreteFlow(3, 1.0)
    cs, ds = f.prior((2, 3)), d.prior((2, 3))
    with pytest.raises(ValueError, match=r"^x_tilde must have shape \(2, 3\) \(the state's\), got \(2, 4\)"):
        f.step(cs, torch.zeros(2, 4), 0.5)
    with pytest.raises(TypeError, match=r"^x_tilde must be a real tensor, got torch.complex64"):
        f.step(cs, torch.zeros(2, 3, dtype=torch.complex64), 0.5)
    with pytest.raises(TypeError, match=r"^x_tilde must be a real tensor, got list"):
        d.step(ds, [0], 0.5)
    with pytest.raises(ValueError, match=r"^x_tilde must have shape \(2, 3\) \(the state's\), got \(2, 4\)"):
        d.step(ds, torch.zeros(2, 4, dtype=torch.long), 0.5)
    for flow, s, k in ((f, cs, ()), (d, ds, (3,))):
        with pytest.raises(ValueError, match=r"^t_next must lie in \[0, 1\]"):
            flow.step(s, torch.zeros(2, 3, *k), 1.5)
        with pytest.raises(ValueError, match=r"^t_prev must lie in \[0, 1\]"):
            flow.inverse_step(s, torch.zeros(2, 3, *k), -0.5)
        with pytest.raises(ValueError, match=r"^y must have shape \(2, 3.*\) \(the state's\), got \(2, 5\)"):
            flow.inverse_step(s, torch.zeros(2, 5), 0.0)
        with pytest.raises(TypeError, match=r"^y must be a real tensor, got int"):
            flow.inverse_step(s, 3, 0.0)
        with pytest.raises(ValueError, match=r"^data_shape must be \(B, \.\.\.\) with sizes >= 1, got \(3,\)"):
            flow.prior((3,))
        with pytest.raises(ValueError, match=r"^data_shape must be \(B, \.\.\.\) with sizes >= 1, got \(2, 0\)"):
            flow.prior((2, 0))
        with pytest.raises((TypeError, ValueError), match=r"^data_shape"):
            flow.prior("x")
        with pytest.raises((TypeError, ValueError), match=r"^channels"):
            flow.input_channels(0)
    with pytest.raises((TypeError, ValueError), match=r"^n_steps"):
        step_times(0)


def test_flow_state_checks_and_conversion():
    p = torch.zeros(2, 3)
    assert FlowState(torch.zeros(2), torch.zeros(2)).params.shape == (2,)  # (B,) is a state too
    for bad, got in ((torch.zeros(2, 3, dtype=torch.long), "torch.int64"), ([0.0], "list"), (torch.tensor(1.0), "torch.float32")):
        with pytest.raises(TypeError, match=rf"^params must be a floating-point tensor \(B, \.\.\.\), got {got}"):
            FlowState(bad, torch.zeros(2))
    for bad, got in ((torch.zeros(3), r"\(3,\)"), (torch.zeros(2, 1), r"\(2, 1\)"), (torch.zeros(2, dtype=torch.complex64), r"\(2,\)"),
                     ([0.0, 0.0], "list")):
        with pytest.raises(ValueError, match=rf"^t must be a real tensor of shape \(2,\) \(one time per example\), got {got}$"):
            FlowState(p, bad)
    s = FlowState(p, torch.tensor([0.1, 0.2], dtype=F64)).to(F64)
    assert s.params.dtype == F64 and s.t.tolist() == [0.1, 0.2]
    with pytest.raises(TypeError, match=r"^dtype must be a floating-point torch.dtype, got torch.int64"):
        s.to(torch.int64)
    with pytest.raises(TypeError, match=r"^param_dtype must be a floating-point torch.dtype, got torch.int64"):
        state_dtype(torch.int64)
    assert state_dtype(torch.float64) == F64 and state_dtype(torch.bfloat16) == torch.float32
    with pytest.raises(TypeError, match=r"^state must be a FlowState, got str"):
        ContinuousFlow(0.1).network_input("s")


def test_times_and_constructor_checks():
    f = ContinuousFlow(0.1)
    x = torch.zeros(2, 3)
    with pytest.raises(TypeError, match=r"^t must be a number or a real tensor, got str"):
        f.sample(x, "a")
    with pytest.raises(ValueError, match=r"^t must be a number or have shape \(2,\), got \(3,\)"):
        f.sample(x, torch.zeros(3))
    for bad in ("0.5", 0, 1, 0.0, 1.0):
        with pytest.raises(ValueError, match="sigma1 must be in"):
            ContinuousFlow(bad)
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match=rf"^num_bins must be None or an int >= 2, got {bad!r}"):
            ContinuousFlow(0.1, bad)
    assert ContinuousFlow(0.1, 2).num_bins == 2
    for bad, got in ((torch.zeros(2, 3, dtype=torch.long), r"torch.int64\(2, 3\)"), (torch.zeros(3), r"torch.float32\(3,\)"),
                     ([0.0], r"list\(\)")):
        with pytest.raises(ValueError, match=rf"^x \(continuous data\) must be a float tensor \(B, \.\.\.\), got {got}$"):
            f.prepare_data(bad)
    # one_hot over the K classes even when a batch holds fewer
    assert DiscreteFlow(3, 1.0).mean_state(torch.tensor([[0, 1]]), 0.5).params.shape == (1, 2, 3)
