"""BFN's output conversions (diffrep.bfn.conversions) and quantisation (diffrep.bfn.quantize) against closed forms
written here: Graves et al. 2023 Eq. 84 (noise prediction -> data prediction, gamma = 1 - sigma1^(2t)), the
reference's min_t guard, safe_exp's [-10, 10] and DiscretisedNormal's [1e-3, 10] clamps, and the bin index
floor((x + 1) K / 2) with boundary ties going up (docs/kernels/bfn.md#quantisation)."""

import math

import pytest
import torch

from diffrep.bfn.conversions import _noise_pred_to_data_pred, noise_pred_to_data_pred, output_normal_params
from diffrep.bfn.quantize import bin_index, quantize


def _eq84(eps, mu, t, s1, log_sigma=None):
    gamma = 1 - s1 ** (2 * t)
    scale = torch.sqrt((1 - gamma) / gamma)
    x_hat = mu / gamma - scale * eps
    return x_hat, None if log_sigma is None else scale * torch.exp(log_sigma.clamp(-10, 10))


def test_noise_pred_to_data_pred_is_eq_84_per_row_and_per_element():
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mu = torch.randn(3, 4, generator=g, dtype=torch.float64) * 0.5
    ls = torch.tensor([[-12.0, -1.0, 0.5, 11.0]] * 3, dtype=torch.float64)  # two entries beyond safe_exp's clamp
    t_row = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    x_hat, sigma = noise_pred_to_data_pred(eps, mu, t_row, 0.02, ls)
    want_x, want_s = _eq84(eps, mu, t_row[:, None], 0.02, ls)
    torch.testing.assert_close(x_hat, want_x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sigma, want_s, rtol=1e-12, atol=1e-12)
    t_el = torch.rand(3, 4, generator=g, dtype=torch.float64) * 0.8 + 0.1
    x_hat, sigma = noise_pred_to_data_pred(eps, mu, t_el, 0.3)
    torch.testing.assert_close(x_hat, _eq84(eps, mu, t_el, 0.3)[0], rtol=1e-12, atol=1e-12)
    assert sigma is None


def test_min_t_guard_gives_zero_mean_and_unit_sigma():
    eps = torch.tensor([[0.7, -0.2, 0.4]], dtype=torch.float64)
    mu = torch.tensor([[0.0, 0.1, 0.3]], dtype=torch.float64)
    ls = torch.tensor([[0.3, 0.3, 0.3]], dtype=torch.float64)
    t = torch.tensor([[0.0, 5e-7, 0.5]], dtype=torch.float64)
    x_hat, sigma = noise_pred_to_data_pred(eps, mu, t, 0.1, ls)
    assert x_hat[0, :2].tolist() == [0.0, 0.0] and sigma[0, :2].tolist() == [1.0, 1.0]
    wx, ws = _eq84(eps[:, 2:], mu[:, 2:], t[:, 2:], 0.1, ls[:, 2:])
    torch.testing.assert_close(x_hat[:, 2:], wx, rtol=1e-12, atol=0)
    torch.testing.assert_close(sigma[:, 2:], ws, rtol=1e-12, atol=0)
    # a larger min_t moves the guard: t = 5e-7 < 1e-6 is guarded by default, t = 0.5 is not below 0.6
    x_hat, sigma = noise_pred_to_data_pred(eps, mu, t, 0.1, ls, min_t=0.6)
    assert x_hat.tolist() == [[0.0, 0.0, 0.0]] and sigma.tolist() == [[1.0, 1.0, 1.0]]
    x_hat, _ = noise_pred_to_data_pred(eps, mu, t, 0.1, ls, min_t=1e-7)
    torch.testing.assert_close(x_hat[0, 1], _eq84(eps[0, 1], mu[0, 1], torch.tensor(5e-7, dtype=torch.float64),
                                                  0.1)[0], rtol=1e-6, atol=0)


def test_unchecked_conversion_gives_the_same_values():
    eps, mu = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, 0.1]])
    t = torch.tensor([0.4])
    a = noise_pred_to_data_pred(eps, mu, t, 0.05, torch.zeros(1, 2))
    b = _noise_pred_to_data_pred(eps, mu, t, 0.05, torch.zeros(1, 2), check_values=False)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_output_normal_params_both_parameterisations_and_the_clamps():
    out_mean = torch.tensor([[0.4, -0.3, 2.0, 0.1]], dtype=torch.float64)
    out_ls = torch.tensor([[-8.0, 0.0, 3.0, -0.5]], dtype=torch.float64)  # exp: 3e-4 -> 1e-3, 1, 20 -> 10, 0.61
    mu_x, sigma_x = output_normal_params(out_mean, out_ls, None, torch.tensor([0.5]), 0.1, noise_pred=False)
    torch.testing.assert_close(mu_x, out_mean, rtol=0, atol=0)
    torch.testing.assert_close(sigma_x, torch.tensor([[1e-3, 1.0, 10.0, math.exp(-0.5)]], dtype=torch.float64),
                               rtol=1e-12, atol=0)
    mu = torch.tensor([[0.1, 0.2, -0.1, 0.0]], dtype=torch.float64)
    t = torch.tensor([0.3], dtype=torch.float64)
    mu_x, sigma_x = output_normal_params(out_mean, out_ls, mu, t, 0.1)  # noise_pred defaults to True
    wx, ws = _eq84(out_mean, mu, t, 0.1, out_ls)
    torch.testing.assert_close(mu_x, wx, rtol=1e-12, atol=0)
    torch.testing.assert_close(sigma_x, ws.clamp(1e-3, 10), rtol=1e-12, atol=0)


def test_conversions_refuse_bad_inputs():
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="sigma1"):
        noise_pred_to_data_pred(z, z, torch.tensor([0.5]), 1.5)
    with pytest.raises(ValueError, match="t"):
        noise_pred_to_data_pred(z, z, torch.tensor([1.5]), 0.1)
    with pytest.raises(ValueError, match="min_t"):
        noise_pred_to_data_pred(z, z, torch.tensor([0.5]), 0.1, min_t=0.0)
    with pytest.raises(ValueError, match="eps_hat"):
        noise_pred_to_data_pred(torch.tensor([[float("nan"), 0.0]]), z, torch.tensor([0.5]), 0.1)
    with pytest.raises(ValueError, match="log_sigma_eps"):
        noise_pred_to_data_pred(z, z, torch.tensor([0.5]), 0.1, torch.tensor([[float("inf"), 0.0]]))
    with pytest.raises(ValueError, match="mu"):
        output_normal_params(z, z, torch.tensor([[float("nan"), 0.0]]), torch.tensor([0.5]), 0.1)
    with pytest.raises(ValueError, match="out_log_sigma"):
        output_normal_params(z, torch.tensor([[float("nan"), 0.0]]), z, torch.tensor([0.5]), 0.1, noise_pred=False)


def test_bin_index_is_the_floor_with_ties_going_up():
    K = 5
    # the K + 1 boundaries -1 + 2j/K: a value on boundary j (j < K) is in bin j, the last goes to K - 1
    b = torch.tensor([-1 + 2 * j / K for j in range(K + 1)], dtype=torch.float64)
    assert bin_index(b, K).tolist() == [0, 1, 2, 3, 4, 4]
    # just below a boundary by more than the tie tolerance: the lower bin; within it: the upper
    assert bin_index(b[1:3] - 1e-6, K).tolist() == [0, 1]
    assert bin_index(b[1:3] - 1e-7, K).tolist() == [1, 2]
    assert bin_index(torch.tensor([-7.0, 7.0]), K).tolist() == [0, 4]
    assert bin_index(torch.zeros(3), K).dtype == torch.int64
    # brute force: the bin whose [lower, upper) holds v
    v = torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    want = ((v[:, None] >= b[None, :-1]) & (v[:, None] < b[None, 1:])).long().argmax(1)
    assert torch.equal(bin_index(v, K), want)
    with pytest.raises(ValueError, match="num_bins"):
        bin_index(v, 1)


def test_quantize_keeps_float64_and_empty_tensors():
    x = torch.tensor([-0.95, 0.0, 0.41], dtype=torch.float64)
    got = quantize(x, 3)  # centres -2/3, 0, 2/3
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor([-2 / 3, 0.0, 2 / 3], dtype=torch.float64), rtol=0, atol=1e-15)
    assert quantize(torch.empty(0, 2), 4).shape == (0, 2)


def test_every_input_is_checked_for_finiteness_and_t_for_its_range():
    z = torch.zeros(1, 2)
    nan = torch.tensor([[float("nan"), 0.0]])
    t = torch.tensor([0.5])
    with pytest.raises(ValueError, match="mu"):
        noise_pred_to_data_pred(z, nan, t, 0.1)
    with pytest.raises(ValueError, match="out_mean"):
        output_normal_params(nan, z, z, t, 0.1)
    with pytest.raises(ValueError, match="t"):
        output_normal_params(z, z, z, torch.tensor([1.5]), 0.1)
    with pytest.raises(ValueError, match=r"float tensor, got torch\.int64"):
        quantize(torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="float tensor, got list"):
        quantize([0.5], 4)
    with pytest.raises(ValueError, match="num_bins"):
        quantize(torch.zeros(2), 0)
