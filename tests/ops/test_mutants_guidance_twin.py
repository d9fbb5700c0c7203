"""The SAMI guidance log-posterior (ops/guidance.py and its twin ops/reference/guidance.py) against a
closed form summed by hand, for the cases a mutation run found unpinned
(benches/results/mutation_geometry_guidance_2026-12-07b.md): the twin's default ``constant=True``,
mixed input dtypes (computed in the promoted dtype), and the argument each error message names."""

import math

import pytest
import torch

from diffrep.ops import guidance, use_backend
from diffrep.ops.reference import guidance as ref


def _closed_form(z, mu, lv, constant=True):
    """mean_s sum_j -1/2 [(z_sj - mu_j)^2 exp(-lv_j) + lv_j + log 2 pi], by loops in Python floats."""
    S, B, D = z.shape
    out = []
    for b in range(B):
        tot = 0.0
        for s in range(S):
            for j in range(D):
                m, v, x = float(mu[b, j]), float(lv[b, j]), float(z[s, b, j])
                tot += -0.5 * ((x - m) ** 2 * math.exp(-v) + v + (math.log(2 * math.pi) if constant else 0.0))
        out.append(tot / S)
    return torch.tensor(out, dtype=torch.float64)


def _inputs(S=2, B=3, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(S, B, D, generator=g, dtype=torch.float64), torch.randn(B, D, generator=g, dtype=torch.float64),
            0.5 * torch.randn(B, D, generator=g, dtype=torch.float64))


def test_twin_includes_the_log_2pi_term_by_default():
    z, mu, lv = _inputs()
    torch.testing.assert_close(ref.log_posterior(z, mu, lv), _closed_form(z, mu, lv), rtol=0, atol=1e-12)
    torch.testing.assert_close(ref.log_posterior(z, mu, lv, False), _closed_form(z, mu, lv, False), rtol=0, atol=1e-12)


@pytest.mark.parametrize("wide", ["z", "mu", "logvar"])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_mixed_dtypes_compute_in_the_promoted_dtype(wide, backend):
    # one float64 argument, two float32 ones: the result is float64 and equals the closed form of the
    # float32 values to float64 precision
    z, mu, lv = _inputs(seed=1)
    args = {"z": z.float(), "mu": mu.float(), "logvar": lv.float()}
    args[wide] = args[wide].double()
    with use_backend(backend):
        out = guidance.log_posterior(args["z"], args["mu"], args["logvar"])
    assert out.dtype == torch.float64
    want = _closed_form(*(args[k].double() for k in ("z", "mu", "logvar")))
    torch.testing.assert_close(out, want, rtol=0, atol=1e-11)


def test_op_error_messages_name_the_argument():
    z, mu, lv = _inputs(S=2, B=3, D=4)
    with pytest.raises(TypeError, match="^z must be a torch.Tensor"):
        guidance.log_posterior(z.tolist(), mu, lv)
    with pytest.raises(TypeError, match="^logvar must be a torch.Tensor"):
        guidance.log_posterior(z, mu, lv.tolist())
    with pytest.raises(ValueError, match=r"^logvar has shape \(3, 2\) but mu has shape \(3, 4\)"):
        guidance.log_posterior(z, mu, lv[:, :2])
    with pytest.raises(ValueError, match=r"^z has shape \(3, 2\) but mu has shape \(3, 4\)"):
        guidance.log_posterior(z[0, :, :2], mu, lv)
    with pytest.raises(ValueError, match=r"^z must have shape \(S, 3, 4\) or \(3, 4\), got \(2, 3, 5\)"):
        guidance.log_posterior(torch.zeros(2, 3, 5, dtype=torch.float64), mu, lv)
    with pytest.raises(ValueError, match=r"^z holds S = 0 samples; need S >= 1"):
        guidance.log_posterior(z[:0], mu, lv)
    with pytest.raises(TypeError, match="^constant must be a bool, got int"):
        guidance.log_posterior(z, mu, lv, constant=1)
    for i, name in enumerate(("z", "mu", "logvar")):
        bad = [z.clone(), mu.clone(), lv.clone()]
        bad[i].view(-1)[1] = math.nan
        with use_backend("reference"), pytest.raises(ValueError, match=f"^{name} contains NaN"):
            guidance.log_posterior(*bad)
        with pytest.raises(ValueError, match="z, mu or logvar contains NaN or infinite values \\(or exp\\(-logvar\\) "
                                             "overflows\\)"):
            guidance.log_posterior(*bad)


def test_twin_error_messages_name_the_argument():
    z, mu, lv = _inputs(S=2, B=3, D=4)
    for i, name in enumerate(("z", "mu", "logvar")):
        bad = [z, mu, lv]
        bad[i] = bad[i].long()
        with pytest.raises(TypeError, match=f"^{name} must be a floating-point tensor"):
            ref.log_posterior(*bad)
    with pytest.raises(ValueError, match="^mu must have 2 dimensions"):
        ref.log_posterior(z, mu[0], lv[0])
    with pytest.raises(ValueError, match=r"^logvar has shape \(3, 2\) but mu has shape \(3, 4\)"):
        ref.log_posterior(z, mu, lv[:, :2])
    shape = r"^z must have shape \(S, 3, 4\) with S >= 1, got "
    with pytest.raises(ValueError, match=shape + r"\(3, 4\)"):
        ref.log_posterior(z[0], mu, lv)  # the twin takes (S, B, D) only
    with pytest.raises(ValueError, match=shape + r"\(2, 3, 5\)"):
        ref.log_posterior(torch.zeros(2, 3, 5, dtype=torch.float64), mu, lv)
    with pytest.raises(ValueError, match=shape + r"\(0, 3, 4\)"):
        ref.log_posterior(z[:0], mu, lv)
    with pytest.raises(ValueError, match=shape + r"\(2, 2, 4\)"):
        ref.log_posterior(z[:, :2], mu, lv)
