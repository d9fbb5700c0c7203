"""The float32 log-space discrete update and sender update at large logits (l + y ~ 30 to 1000, which a
sender sample with alpha K ~ 100 reaches), native kernels against float64 log_softmax of the same float32
logits: no further from it than the float32 twin (ATen's log_softmax, (l - max) - log sum) plus 3 ulp of 1.
Subtracting logsumexp in one piece, l - fl(lse), rounded log-probabilities near 0 to the ulp of lse (errors
2e-6 to 3e-5 at logits 30 to 1000, against the twin's 1e-7 to 4e-7 and its comparison atol of 2e-6).
Every CPU path: K = 2 (straight-line items), K = 5 (flat passes), K = 16 and 256 (groups of 16 items, the
tail items flat), K = 40 (groups with masked lanes); logits above 88 overflow the unshifted sums and
take the max-shifted item body. The results stay <= 0 (an unshifted sum's exps and log round either way; a
dominant class at +1e-8 is an invalid input to the next update). docs/kernels/bfn.md#numerical-safeguards."""

import pytest
import torch

from diffrep.ops import bfn

from helpers import native_and_twin

ULP1 = 2.0**-23  # float32 ulp of 1
N_ITEMS = 16 * 6 + 5  # whole groups of 16 and a tail


def rel_err(out, truth):
    """Error relative to max(1, |log p|): absolute near 0, where log-probabilities keep most digits."""
    return ((out.double() - truth).abs() / truth.abs().clamp(min=1)).max().item()


def truth_of(theta, y):
    """float64 log_softmax of the float32 logits theta + y, which native and twin both form first."""
    return torch.log_softmax((theta + y).double().cpu(), -1)


def inputs(K, offset, seed):
    g = torch.Generator().manual_seed(seed)
    theta = torch.log_softmax(torch.randn(N_ITEMS, K, generator=g) * 2, -1)
    y = offset + torch.randn(N_ITEMS, K, generator=g) * 3
    return theta, y


@pytest.mark.parametrize("K", [2, 5, 16, 40, 256])
@pytest.mark.parametrize("offset", [30.0, 80.0, 1000.0])
def test_update_keeps_log_probabilities_near_zero(device, K, offset):
    theta, y = inputs(K, offset, seed=K)
    theta, y = theta.to(device), y.to(device)
    truth = truth_of(theta, y)
    for fn, yy in ((bfn.discrete_update, y), (bfn.discrete_update_inverse, -y)):
        native, twin = native_and_twin(lambda: fn(theta, yy, log=True), device)
        err, err_twin = rel_err(native.cpu(), truth), rel_err(twin.cpu(), truth)
        assert err <= err_twin + 3 * ULP1, (fn.__name__, err, err_twin)
        assert bool((native <= 0).all())  # log-probabilities, valid input for the next update


@pytest.mark.parametrize("K", [2, 5, 16, 256])
@pytest.mark.parametrize("top", [30.0, 60.0])
def test_sender_update_keeps_log_probabilities_near_zero(device, K, top):
    # largest logit ~ alpha (K - 1), the sent class's mean: the unshifted sums stay finite
    g = torch.Generator().manual_seed(K)
    theta = torch.log_softmax(torch.randn(N_ITEMS, K, generator=g) * 2, -1).to(device)
    x = torch.randint(0, K, (N_ITEMS,), generator=g).to(device)
    noise = torch.randn(N_ITEMS, K, generator=g).to(device)
    alpha = top / (K - 1)
    (native, y_native), (twin, y_twin) = native_and_twin(
        lambda: bfn.discrete_sender_update(theta, x, alpha, log=True, noise=noise, return_y=True), device)
    assert bool((native <= 0).all())
    err = rel_err(native.cpu(), truth_of(theta, y_native))
    err_twin = rel_err(twin.cpu(), truth_of(theta, y_twin))
    assert err <= err_twin + 3 * ULP1, (err, err_twin)
