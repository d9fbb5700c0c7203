"""Bad input gets a clear exception naming the problem; the native boundary never crashes."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diffrep import _native
from diffrep.bfn import loss_terms
from diffrep.ops import bfn, use_backend

X = torch.zeros(2, 3)
T = torch.full((2,), 0.5)
BACKENDS = ["cpu", "reference"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with use_backend(request.param):
        yield request.param


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bfn.continuous_flow(X.long(), T, 1e-3), "x must be a floating-point tensor"),
        (lambda: bfn.continuous_flow([0.0], T, 1e-3), "x must be a torch.Tensor"),
        (lambda: bfn.continuous_flow(X, torch.full((3,), 0.5), 1e-3), r"t must have shape \(2,\)"),
        (lambda: bfn.continuous_flow(X, torch.full((2,), 1.5), 1e-3), r"t must lie in \[0, 1\]"),
        (lambda: bfn.continuous_flow(X, torch.full((2,), math.nan), 1e-3), "not be NaN"),
        (lambda: bfn.continuous_flow(X, T, 1.0), "sigma1 must be < 1"),
        (lambda: bfn.continuous_flow(X, T, -0.1), "sigma1 must be > 0"),
        (lambda: bfn.continuous_flow(torch.zeros(0, 3), torch.zeros(0), 1e-3), "x is empty"),
        (lambda: bfn.continuous_flow(torch.zeros(()), T, 1e-3), "batch dimension"),
        (lambda: bfn.continuous_flow(torch.tensor([[math.nan, 0.0]]), 0.5, 1e-3), "NaN"),
        (lambda: bfn.continuous_flow(X, T, 1e-3, generator=3), "generator must be a torch.Generator"),
        (lambda: bfn.continuous_flow(X, T, 1e-3, noise=torch.zeros(2, 4)), r"noise must have shape \(2, 3\)"),
        (lambda: bfn.continuous_flow(X, T, 1e-3, noise=torch.full((2, 3), math.nan)), "noise contains NaN"),
        (lambda: bfn.continuous_flow(X, T.to("meta"), 1e-3), "one device"),
        (lambda: bfn.discrete_flow(X, T, 3.0, 2), "integer class indices"),
        (lambda: bfn.discrete_flow(X.long(), T, 3.0, 1), "num_classes must be >= 2"),
        (lambda: bfn.discrete_flow(X.long() + 2, T, 3.0, 2), r"class outside \[0, 2\)"),
        (lambda: bfn.discrete_flow(X.long() - 1, T, 3.0, 2), r"class outside \[0, 2\)"),
        (lambda: bfn.discrete_flow(X.long(), T, 0.0, 2), "beta1 must be > 0"),
        (lambda: bfn.continuous_update(X, 1.0, torch.zeros(2, 4), 0.5), "y has shape"),
        (lambda: bfn.continuous_update(X, 1.0, X, -0.5), "alpha must be >= 0"),
        (lambda: bfn.continuous_update(X, 0.0, X, 0.5), "rho must be > 0"),
        (lambda: bfn.continuous_update_inverse(X, 1.0, X, 1.0), "rho - alpha must be > 0"),
        (lambda: bfn.continuous_update(X, 1.0, X + math.inf, 0.5), "NaN or infinite"),
        (lambda: bfn.discrete_update(torch.full((2, 1), 1.0), torch.zeros(2, 1)), "number of classes"),
        (lambda: bfn.discrete_update(torch.full((2, 3), -0.1), torch.zeros(2, 3)), "probabilities"),
        (lambda: bfn.discrete_update(torch.zeros(2, 3), torch.zeros(2, 3)), "at least one class"),
        (lambda: bfn.discrete_update(torch.full((2, 3), 1 / 3), torch.full((2, 3), math.nan)),
         "y (must be finite|contains NaN)"),
        (lambda: bfn.discrete_sender_update(torch.full((2, 3), 1 / 3), torch.zeros(3).long(), 1.0),
         "x must have shape"),
        (lambda: bfn.discretised_probs(X, torch.zeros(2, 3), 4), "sigma_x must be > 0"),
        (lambda: bfn.discretised_probs(X, torch.ones(2, 4), 4), "sigma_x has shape"),
        (lambda: bfn.discretised_probs(X, torch.ones(2, 3), 1), "num_bins must be >= 2"),
        (lambda: bfn.discretised_probs(X, torch.ones(2, 3), 4.0), "num_bins must be an int"),
        (lambda: bfn.discretised_probs(X + math.nan, torch.ones(2, 3), 4), "NaN"),
        (lambda: bfn.discretised_continuous_time_loss(X, X, None, T, X, 1e-3, 16), "mu must be a torch.Tensor"),
        (lambda: bfn.discretised_continuous_time_loss(X, X, X, T, torch.zeros(2, 2), 1e-3, 16), "x has shape"),
        (lambda: bfn.discrete_continuous_time_loss(torch.zeros(2, 3, 4), torch.zeros(2, 2).long(), T, 3.0),
         "x must have shape"),
        (lambda: bfn.discrete_continuous_time_loss(torch.zeros(2, 3, 4), torch.full((2, 3), 4), T, 3.0),
         r"class outside \[0, 4\)"),
        (lambda: loss_terms.discretised_discrete_time_loss(X, X, X, T, X, 1e-3, 16, 0),
         "n_steps must be a positive int"),
        # discretised data outside [-1, 1] (e.g. left in [0, 255]): the kernels flag it, both K = 2
        # (items::disc_cts_loss2) and the general body, also when it is one value just outside
        (lambda: bfn.discretised_continuous_time_loss(X, X, X, T, X + 255.0, 1e-3, 256), r"x must lie in \[-1, 1\]"),
        (lambda: bfn.discretised_continuous_time_loss(X, X, X, T, X.index_fill(1, torch.tensor([2]), -1.0001), 1e-3,
                                                      2), r"x must lie in \[-1, 1\]"),
        (lambda: bfn.discretised_continuous_time_loss(X, X, X, T, X + 1.5, 1e-3, 16, noise_pred=False),
         r"x must lie in \[-1, 1\]"),
        (lambda: loss_terms.discretised_discrete_time_loss(X, X, X, T, X + 1.5, 1e-3, 16, 4),
         r"x must lie in \[-1, 1\]"),
        # t outside [0, 1]: checked by the CPU kernels themselves (NON_FINITE, then the message)
        (lambda: bfn.continuous_flow(X, torch.tensor([[0.5, 0.5, 0.5], [0.5, -0.1, 0.5]]), 1e-3),
         r"t must lie in \[0, 1\].*-0.1"),
        (lambda: bfn.discrete_flow(X.long(), torch.tensor([0.5, 1.5]), 3.0, 2), r"t must lie in \[0, 1\].*1.5"),
        (lambda: bfn.discrete_flow(X.long(), torch.full((2, 3), math.nan), 3.0, 3), "not be NaN"),
        (lambda: bfn.discretised_continuous_time_loss(X, X, X, torch.tensor([0.5, 2.0]), X, 1e-3, 16),
         r"t must lie in \[0, 1\].*2.0"),
        (lambda: bfn.discrete_continuous_time_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3).long(),
                                                   torch.tensor([-1.0, 0.5]), 3.0), r"t must lie in \[0, 1\].*-1.0"),
    ],
)
def test_bad_input_raises_a_named_error(backend, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_out_params_are_not_silently_converted():
    """A wrong-dtype or non-contiguous out-param raises TypeError (nanobind .noconvert())."""
    cpu = _native.cpu_module()
    x = torch.zeros(8)
    flags = torch.zeros(1, dtype=torch.int32)
    args = dict(t=torch.zeros(8), t_per_row=False, row_len=8, log_s1sq=-13.8, noise=x, seed=0, offset=0,
                device=-1, stream=0)
    with pytest.raises(TypeError):
        cpu.cts_flow(x=x, **args, out=torch.zeros(8, dtype=torch.float64), flags=flags)
    with pytest.raises(TypeError):
        cpu.cts_flow(x=x, **args, out=torch.zeros(16)[::2], flags=flags)
    with pytest.raises(TypeError):
        cpu.cts_flow(x=x, **args, out=torch.zeros(8), flags=flags.long())
    with pytest.raises(TypeError):
        cpu.cts_flow(x=x.int(), **args, out=torch.zeros(8), flags=flags)
    with pytest.raises(TypeError):  # keywords only: no positional runs of bare bools
        cpu.cts_flow(x, torch.zeros(8), False, 8, -13.8, x, 0, 0, torch.zeros(8), flags, -1, 0)
    cpu.cts_flow(x=x, **args, out=torch.zeros(8), flags=flags)
    with pytest.raises(ValueError):  # out must hold size * K
        cpu.disc_probs(mu_x=x, sigma_x=x + 1, K=4, clip=True, out=torch.zeros(8), flags=flags, device=-1, stream=0)


arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=32))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=arrays, t=st.floats(allow_nan=True, allow_infinity=True, width=32),
       k=st.integers(-3, 40), sigma1=st.one_of(st.floats(-1, 2), st.just(math.nan)), op=st.integers(0, 7))
def test_fuzz_public_ops_never_crash(x, t, k, sigma1, op):
    """Arbitrary values, NaN and inf included: a result or a ValueError/TypeError, never a crash."""
    xt = torch.from_numpy(x)
    try:
        if op == 0:
            out = bfn.continuous_flow(xt, t, sigma1)
        elif op == 1:
            out = bfn.discrete_flow(xt.nan_to_num().long(), t, abs(sigma1) + 0.1, k)
        elif op == 2:
            out = bfn.discretised_probs(xt, xt.abs(), k, clip=bool(op % 2))
        elif op == 3:
            out = bfn.discrete_update(torch.softmax(xt, -1), xt)
        elif op == 4:
            out = bfn.continuous_update_inverse(xt, 2.0, xt, abs(t) if math.isfinite(t) else t)[0]
        elif op == 5:
            out = bfn.discretised_continuous_time_loss(xt, xt, xt, t, xt, sigma1, k)
        elif op == 6:
            out = bfn.discrete_continuous_time_loss(xt.unsqueeze(-1).expand(*xt.shape, 3).contiguous(),
                                                    xt.nan_to_num().long().clamp(0, 2), t, 2.0)
        else:
            out = bfn.discrete_sender_update(torch.softmax(xt.nan_to_num(), -1).unsqueeze(-1).expand(
                *xt.shape, 2).contiguous() / 1, torch.zeros(xt.shape, dtype=torch.long), abs(sigma1) + 1)
    except (ValueError, TypeError):
        return
    assert isinstance(out, torch.Tensor)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 40), k=st.integers(-2, 9), row_len=st.integers(-3, 50), per_row=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int32]))
def test_fuzz_native_boundary_directly(n, k, row_len, per_row, dtype):
    """Calling _cpu with inconsistent sizes/dtypes raises, or runs within the given buffers."""
    cpu = _native.cpu_module()
    flags = torch.zeros(1, dtype=torch.int32)
    a = torch.from_numpy(np.zeros(n, dtype=dtype))
    out = torch.zeros(max(n * max(k, 0), 0), dtype=a.dtype if a.is_floating_point() else torch.float32)
    try:
        launch = dict(flags=flags, device=-1, stream=0)
        cpu.disc_probs(mu_x=a, sigma_x=a, K=k, clip=True, out=out, **launch)
        cpu.discrete_cts_loss(logits=out, x=a.long(), t=torch.zeros(n), t_per_row=False, row_len=1, K=k, beta1=1.0,
                              want_grad=False, loss=a, d_logits=out, **launch)
        cpu.disc_update(theta=out, y=out, K=k, inverse=False, log_io=True, out=out, **launch)
    except (TypeError, ValueError):
        pass


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [2, 16])
def test_discretised_loss_takes_data_on_the_edges_of_its_range(backend, K):
    # [-1, 1] is closed: the outermost bin centres lie inside it, and data clipped to the edges is valid
    x = torch.tensor([[-1.0, 1.0, 0.0]]).repeat(2, 1)
    e = torch.zeros(2, 3, requires_grad=True)
    with use_backend(backend):
        loss = bfn.discretised_continuous_time_loss(e, torch.zeros(2, 3), x, T, x, 1e-3, K)
        (grad,) = torch.autograd.grad(loss.sum(), e)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
