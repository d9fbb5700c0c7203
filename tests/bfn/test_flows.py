"""Flows, updates and exact inverses (docs/kernels/bfn.md#inverse-update properties)."""

import math

import pytest
import torch

from diffrep.bfn import ContinuousFlow, DiscreteFlow, FlowState, step_times


def test_step_times_grid():
    assert step_times(4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        step_times(0)


def test_continuous_n_updates_reach_final_precision_and_invert():
    torch.manual_seed(0)
    flow, n = ContinuousFlow(1e-3), 25
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 - 1
    state = flow.prior(x.shape, dtype=torch.float64)
    ys = []
    for i, t in enumerate(step_times(n)[1:], start=1):
        state, y = flow.step(state, x, t)
        ys.append(y)
    assert float(flow.precision(state.t)[0]) == pytest.approx(1e6, rel=1e-12)  # sigma1^-2 exactly
    assert (state.params - x).abs().max() < 0.05
    for y, t in zip(reversed(ys), reversed(step_times(n)[:-1])):
        state = flow.inverse_step(state, y, t)
    assert float(state.t[0]) == 0.0
    assert state.params.abs().max() < 1e-8  # back at the prior mu = 0 (fp64 chain)


def test_continuous_noise_free_updates_reach_mean_state():
    flow, n = ContinuousFlow(0.02), 10
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64) * 2 - 1
    state = flow.prior(x.shape, dtype=torch.float64)
    for t in step_times(n)[1:]:
        state, _ = flow.step(state, x, t, sender_noise=False)
    ref = flow.mean_state(x, 1.0)
    assert torch.allclose(state.params, ref.params, atol=1e-12)


def test_discrete_updates_absorb_beta1_and_invert_in_log_space():
    torch.manual_seed(1)
    flow, n = DiscreteFlow(3, 3.0), 20
    x = torch.randint(0, 3, (2, 1, 4, 4))
    state = flow.prior(x.shape, dtype=torch.float64)
    ys = []
    for t in step_times(n)[1:]:
        state, y = flow.step(state, x, t)
        ys.append(y)
    assert float(flow.beta(state.t)[0]) == pytest.approx(9.0)
    for y, t in zip(reversed(ys), reversed(step_times(n)[:-1])):
        state = flow.inverse_step(state, y, t)
    assert torch.allclose(state.params, torch.full_like(state.params, -math.log(3)), atol=1e-10)


def test_discrete_soft_step_matches_mean_state_and_flow_mean():
    flow = DiscreteFlow(2, 3.0)
    x = torch.randint(0, 2, (2, 1, 4, 4))
    onehot = torch.nn.functional.one_hot(x, 2).double()
    state = flow.prior(x.shape, dtype=torch.float64)
    for t in step_times(5)[1:]:
        state, _ = flow.step(state, onehot, t, sender_noise=False)
    assert torch.allclose(state.params, flow.mean_state(x, 1.0).params, atol=1e-10)


def test_flow_sample_moments_continuous():
    flow = ContinuousFlow(1e-3)
    x = torch.full((4000, 1, 1, 1), 0.5)
    g = float(flow.gamma(torch.tensor(0.4)))
    mu = flow.sample(x, 0.4, torch.Generator().manual_seed(0)).params
    assert float(mu.mean()) == pytest.approx(g * 0.5, abs=0.03)
    assert float(mu.var()) == pytest.approx(g * (1 - g), rel=0.1)


def test_discrete_network_input_and_data_mapping():
    flow = DiscreteFlow(2, 3.0)
    x = torch.tensor([[[[-1.0, 1.0]]]])
    data = flow.prepare_data(x)
    assert data.tolist() == [[[[0, 1]]]]
    st = flow.mean_state(data, 1.0)
    inp = flow.network_input(st)
    assert inp.shape == (1, 1, 1, 2)
    assert inp[0, 0, 0, 0] > 0.99 and inp[0, 0, 0, 1] < -0.99  # 2 p(class 0) - 1
    assert torch.equal(flow.data_to_float(data), x)
    f3 = DiscreteFlow(3, 1.0)
    assert f3.network_input(f3.prior((2, 1, 4, 4))).shape == (2, 3, 4, 4)


def test_flow_input_validation():
    with pytest.raises(ValueError):
        ContinuousFlow(1.5)
    with pytest.raises(ValueError):
        DiscreteFlow(1, 3.0)
    flow = ContinuousFlow(0.01)
    st = flow.prior((2, 1, 2, 2))
    with pytest.raises(ValueError, match="later"):
        flow.step(FlowState(st.params, torch.full((2,), 0.5, dtype=torch.float64)), st.params, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flow.sample(torch.zeros(2, 1, 2, 2), 1.5)
