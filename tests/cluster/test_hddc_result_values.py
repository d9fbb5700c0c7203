"""The HDDC fit's result assembly (``_result``): the ``floored`` event counts, the BIC per unit, the
dtype of the log-likelihood, the single-slot result and ``padded``'s refusal of non-integers, each
against a hand-built case (points with a known sample covariance) or a closed form.

Written for the mutation audit of 2026-12-07 (benches/results/mutation_contract_audit_2026-12-07.md)."""

import math

import pytest
import torch

from diffrep.cluster import hddc

N = 40


def _patterns():
    """A line coordinate t and two +-1 patterns (mean 0, a.b = 0) for the off-line directions."""
    t = torch.linspace(-1, 1, N, dtype=torch.float64)
    a = torch.tensor([1.0, -1.0] * (N // 2), dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, -1.0, -1.0] * (N // 4), dtype=torch.float64)
    return t, a, b


def _three_units():
    """Unit 0: points on a line (noise variance 0, so b_k is floored at 1e-8); unit 1: the line
    plus off-line variance about 1.5e-8 (b_k between the floor and twice it: not floored); unit 2:
    standard normal points."""
    t, a, b = _patterns()
    s = 1.5e-8 ** 0.5
    g = torch.Generator().manual_seed(0)
    return torch.stack([torch.stack([t, 0 * t, 0 * t], 1), torch.stack([t, s * a, s * b], 1),
                        torch.randn(N, 3, generator=g, dtype=torch.float64)])


def test_floored_counts_per_unit_hddc_model():
    r = hddc.fit(_three_units(), n_components=1, max_components=2, split=False)
    b = r.b[:, 0]
    assert b[0].item() == pytest.approx(1e-8, rel=1e-12)  # the M-step floor (noise.ctrl)
    assert 1.2e-8 < b[1].item() < 2e-8 and b[2].item() > 0.1  # the preconditions of the counts
    assert r.events["floored"].tolist() == [1, 0, 0]


def test_floored_counts_per_unit_full_model():
    """Full covariances: the smallest eigenvalue is reg_covar for points on a line (counted), and
    0.01 + reg_covar for points with variance 0.01 in every direction (not counted); the second
    eigenvalue of the line is its spread (the count looks at the smallest one only). reg_covar =
    2e-6, the count's threshold itself, is still counted as floored."""
    t, a, b = _patterns()
    x = torch.stack([torch.stack([t, 0 * t], 1), 0.1 * torch.stack([a, b], 1)])
    for reg in (1e-6, 2e-6):
        r = hddc.fit(x, n_components=1, max_components=2, split=False, model="full", reg_covar=reg)
        lam = torch.linalg.eigvalsh(r.covariances[:, 0])
        assert lam[0, 0].item() == pytest.approx(reg, rel=1e-9) and lam[0, 1].item() > 0.1
        assert lam[1].tolist() == pytest.approx([0.01 + reg] * 2, rel=1e-9)
        assert r.events["floored"].tolist() == [1, 0]


def test_bic_per_unit_is_the_closed_form():
    """One full-covariance Gaussian in d = 2: m = d + d (d + 1) / 2 = 5 free parameters, and
    BIC = 2 L - m log n with n the unit's own number of points (HDclassif's convention), so each
    unit's BIC is unaffected by how many units are fitted together."""
    t, a, b = _patterns()
    x = torch.stack([torch.stack([t, 0.3 * a], 1), 0.1 * torch.stack([a, b], 1)])
    r = hddc.fit(x, n_components=1, max_components=2, split=False, model="full")
    # L itself: the Gaussian log-likelihood at the sample mean and (ddof 0) covariance + reg_covar
    for u in range(2):
        xc = x[u] - x[u].mean(0)
        cov = xc.T @ xc / N + 1e-6 * torch.eye(2, dtype=torch.float64)
        L = torch.distributions.MultivariateNormal(x[u].mean(0), cov).log_prob(x[u]).sum()
        assert r.log_likelihood[u].item() == pytest.approx(L.item(), rel=1e-9)
        assert r.bic[u].item() == pytest.approx(2 * L.item() - 5 * math.log(N), rel=1e-9)


def test_single_component_result_has_one_slot_and_the_input_dtype():
    x = _three_units().float()
    r = hddc.fit(x, n_components=1, max_components=4, split=False)
    assert r.weights.shape == (3, 1) and r.means.shape == (3, 1, 3) and r.active.all()
    assert r.log_likelihood.dtype == torch.float32 and r.bic.dtype == torch.float32


def test_padded_refuses_a_float_number_of_slots():
    r = hddc.fit(_three_units(), n_components=1, max_components=2, split=False)
    for bad in (3.0, 2.5, "3"):
        with pytest.raises(ValueError, match="num_slots must be an int"):
            r.padded(bad)
    assert r.padded(3).means.shape == (3, 3, 3)


def test_compaction_keeps_the_slot_order_of_the_active_components():
    """20 starting components, from one-hot responsibilities on 20 planted clusters along a line
    (centres 10 k); the clusters 4 and 13 have one point each, so those components are
    deactivated (fewer than 2 members) and leave holes. The result keeps the other 18 in their
    starting order: means increasing, each near its planted centre (the lone points join a
    neighbour and move its mean by under 1.5). 20 slots: an unstable sort reorders ties from 17
    entries on (torch CPU), so the order is the sort's stability, not luck."""
    g = torch.Generator().manual_seed(0)
    lone = {4, 13}
    pts, lab = [], []
    for k in range(20):
        m = 1 if k in lone else 12
        pts.append(torch.tensor([10.0 * k, 0.0], dtype=torch.float64)
                   + 0.3 * torch.randn(m, 2, generator=g, dtype=torch.float64))
        lab += [k] * m
    x = torch.cat(pts)[None]
    r0 = torch.nn.functional.one_hot(torch.tensor(lab), 20).double()[None]
    r = hddc.fit(x, n_components=20, max_components=20, split=False, init_resp=r0, model="full")
    assert r.n_components.tolist() == [18] and r.events["deactivated"].tolist() == [2]
    centres = torch.tensor([10.0 * k for k in range(20) if k not in lone], dtype=torch.float64)
    assert (r.means[0, :, 0] - centres).abs().max().item() < 1.5
