"""HDclassif's two-cycle detector in the HDDC EM (docs/kernels/hddc.md, step 2; cran/HDclassif 2.2.2
``hddc_main``, "ALTERNATION CATCHING"): after 20 iterations, an EM whose log-likelihood alternates
between two states (L_t ~ L_{t-2} and L_{t-1} ~ L_{t-3} by the convergence test, L_t not ~ L_{t-1}) stops
on the better state: at once if L_t >= L_{t-1}, else after one more iteration.

The oscillating cases are small AkjBkQkDk problems (25 points, d = 3, K = 3) whose Cattell dimension of
one component flips between 1 and 2 at every iteration. The tests run the library's single EM step
(M-step sums, parameters, E-step) by hand, apply the rule written here to the recorded L_t, and
compare the EM's result with the hand-run iterate where the rule stops."""

import math

import torch

from diffrep.cluster import hddc
from diffrep.cluster.em import _alternation, em
from diffrep.ops import hddc as ops

N, D, K = 25, 3, 3


def _case(seed):
    """x (1, 25, 3) and random starting responsibilities (1, 25, 3): three random groups of
    anisotropic points."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, K, (N,), generator=g)
    cent = torch.randn(K, D, generator=g, dtype=torch.float64) * 2
    noise = torch.randn(N, D, generator=g, dtype=torch.float64)
    x = noise * (torch.rand(1, D, generator=g, dtype=torch.float64) * 3) + cent[lab]
    r = torch.softmax(2 * torch.randn(N, K, generator=g, dtype=torch.float64), -1)
    return x[None], r[None]


def _cfg(tol, max_iter=30):
    return dict(model="AkjBkQkDk", max_iter=max_iter, tol=tol, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)


def _trajectory(x, r0, T):
    """(L_1..L_T, the means after each M-step, the d_k of each) of T hand-run EM iterations."""
    eng = ops.Engine("cpu", x)
    units = torch.zeros(1, dtype=torch.int64)
    act = torch.ones(1, K, dtype=torch.bool)
    w = torch.ones(1, N, dtype=torch.float64)
    resp, Ls, mus, dks = r0.clone(), [], [], []
    for _ in range(T):
        nk, mu, W = eng.mstep(units, w, resp, act)
        p = ops.params(nk, mu, W, w.sum(1), act, _cfg(1.0))
        resp, L, _ = eng.estep(units, w, p, False)
        Ls.append(float(L[0]))
        mus.append(p["mu"][0].clone())
        dks.append(p["dk"][0].tolist())
    return Ls, mus, dks


def _close(a, b, tol):
    return abs(a - b) < tol or abs(a - b) / (0.1 + abs(a)) < tol


def _stop(Ls, tol, max_iter=30):
    """The 1-based iteration where the documented rule stops, written from its description."""
    one_more = False
    for t in range(1, max_iter + 1):
        L = Ls[t - 1]
        conv = t >= 2 and _close(L, Ls[t - 2], tol)
        if conv or one_more:
            return t
        if t > 20 and _close(L, Ls[t - 3], tol) and _close(Ls[t - 2], Ls[t - 4], tol):
            if L >= Ls[t - 2]:
                return t
            one_more = True
    return max_iter


def _em(x, r0, tol, max_iter=30):
    eng = ops.Engine("cpu", x)
    p, _, L = em(eng, torch.zeros(1, dtype=torch.int64), torch.ones(1, N, dtype=torch.float64), r0.clone(),
                 torch.ones(1, K, dtype=torch.bool), _cfg(tol, max_iter))
    return p, float(L[0])


def test_a_cycle_whose_better_state_is_the_current_one_stops_at_iteration_21():
    x, r0 = _case(1859)
    Ls, mus, dks = _trajectory(x, r0, 30)
    # the cycle: component 2's d_k flips 2 <-> 1, L alternates between about -97.93 and -104.58
    assert dks[20] == [2, 1, 2] and dks[19] == [2, 1, 1] and dks[29] == [2, 1, 1]
    assert Ls[20] - Ls[19] > 6.0 and abs(Ls[20] - Ls[18]) < 1e-5 and abs(Ls[19] - Ls[17]) < 1e-5
    tol = 1e-4                                   # (1e-3 stops by the relative test at t = 12, before the cycle)
    assert _stop(Ls, tol) == 21
    p, L = _em(x, r0, tol)
    assert L == Ls[20]                           # the cycle drifts: L_19, L_21, L_23 differ in the last digits
    assert Ls[18] != Ls[20] != Ls[22]
    torch.testing.assert_close(p["mu"][0], mus[20], rtol=0, atol=0)
    # without the detector the EM would run to max_iter = 30 and end on the worse state
    assert Ls[29] < L - 6.0


def test_a_cycle_whose_better_state_is_the_next_one_runs_one_more_iteration():
    x, r0 = _case(2148)
    Ls, mus, _ = _trajectory(x, r0, 30)
    assert Ls[20] < Ls[19] - 5.0                 # at t = 21 the current state is the worse one
    assert _stop(Ls, 1e-3) == 22
    p, L = _em(x, r0, 1e-3)
    assert L == Ls[21] and Ls[19] != Ls[21] != Ls[23]
    torch.testing.assert_close(p["mu"][0], mus[21], rtol=0, atol=0)


def test_the_detector_waits_for_iteration_21():
    # both cycles run from about iteration 11: with max_iter 20 neither is stopped early
    for seed, tol in ((1859, 1e-4), (2148, 1e-3)):
        x, r0 = _case(seed)
        Ls, _, _ = _trajectory(x, r0, 20)
        assert _em(x, r0, tol, max_iter=20)[1] == Ls[19]
    # 2148's better state is at even iterations: a detector from t = 20 on would stop at 20, not 22
    x, r0 = _case(2148)
    Ls, _, _ = _trajectory(x, r0, 22)
    assert Ls[19] >= Ls[18] and Ls[19] != Ls[21]


def test_fit_ends_an_exact_cycle_on_its_better_state():
    # seed 876: from t = 14 on the iterates repeat bit for bit (L = -69.760 / -87.614, the better at odd
    # t). HDclassif's literal test (abs(L_{t-1} == L_{t-3}) as a 0/1 value) cannot fire on bit-identical
    # values while |L| < 999.9 and would run on; the intended test stops at t = 21 on the better state,
    # where 30 iterations would end on the worse one.
    x, r0 = _case(876)
    Ls, _, _ = _trajectory(x, r0, 30)
    assert Ls[13] == Ls[15] == Ls[19] == Ls[29] and Ls[14] == Ls[20]
    assert Ls[20] > Ls[29] + 17.0
    r = hddc.fit(x, n_components=3, split=False, init_resp=r0, max_iter=30)
    assert float(r.log_likelihood[0]) == Ls[20]
    m = (3 * 3 + 2) + sum(dk * (3 - (dk + 1) / 2) + dk for dk in (2, 2, 1)) + 2 * 3
    assert float(r.bic[0]) == 2 * Ls[20] - m * math.log(N)


def test_units_that_stop_at_different_iterations_in_one_batch():
    # an early-converging unit (three far groups, started from their labels), and the two cycles:
    # each unit's result in the batch equals its result alone
    g = torch.Generator().manual_seed(0)
    lab = torch.arange(N) % K
    xs = torch.tensor([[0.0, 0, 0], [20, 0, 0], [0, 20, 0]], dtype=torch.float64)[lab]
    xe = (xs + 0.5 * torch.randn(N, D, generator=g, dtype=torch.float64))[None]
    re = torch.nn.functional.one_hot(lab, K).to(torch.float64)[None]
    (x1, r1), (x2, r2) = _case(1859), _case(2148)
    x, r0 = torch.cat([xe, x1, x2]), torch.cat([re, r1, r2])
    eng = ops.Engine("cpu", x)
    p, _, L = em(eng, torch.arange(3), torch.ones(3, N, dtype=torch.float64), r0.clone(),
                 torch.ones(3, K, dtype=torch.bool), _cfg(1e-4))
    for u, (xu, ru) in enumerate(((xe, re), (x1, r1), (x2, r2))):
        pu, Lu = _em(xu, ru, 1e-4)
        assert float(L[u]) == Lu
        torch.testing.assert_close(p["mu"][u], pu["mu"][0], rtol=0, atol=0)
    assert _stop(_trajectory(xe, re, 30)[0], 1e-4) < 10
    assert float(L[1]) == _trajectory(x1, r1, 21)[0][20] and float(L[2]) == _trajectory(x2, r2, 22)[0][21]


def _alt(L, L1, L2, L3, tol=1e-3):
    f = lambda v: torch.tensor([v], dtype=torch.float64)     # noqa: E731
    stop, more = _alternation(f(L), f(L1), f(L2), f(L3), tol)
    return bool(stop[0]), bool(more[0])


def test_alternation_rule_on_hand_values():
    # |L| about 50: the relative test binds (tol (0.1 + |L|) = 0.05); steps of 10 are not converged
    assert _alt(-50.0, -40.0, -50.01, -40.01) == (False, True)           # worse now: one more iteration
    assert _alt(-40.0, -50.0, -40.01, -50.01) == (True, False)           # better now: stop
    assert _alt(-40.0, -40.0, -40.0, -40.0) == (False, False)            # converged: not a cycle
    assert _alt(-40.0, -40.03, -40.0, -40.0) == (False, False)           # nor within L's relative tolerance
    # the second pair must also be close: HDclassif's literal test (a 0/1 comparison) would fire here
    assert _alt(-50.0, -40.0, -50.01, -30.0) == (False, False)
    assert _alt(-50.0, -40.0, -50.1, -40.0) == (False, False)            # the first pair not close
    # bit-identical pairs with |L| < 999.9 (where HDclassif's literal test cannot fire) are a cycle
    assert _alt(-50.0, -40.0, -50.0, -40.0) == (False, True)
    # |L| < 0.9: the absolute test binds (tol = 1e-3 > tol (0.1 + |L|))
    assert _alt(-0.5, -0.2, -0.5005, -0.2005) == (False, True)
    assert _alt(-0.5, -0.2, -0.5015, -0.2) == (False, False)
    assert _alt(-0.5, -0.2, -0.5, -0.2015) == (False, False)
    # each pair is measured relative to its later value: |L_t| for (L_t, L_{t-2}), |L_{t-1}| for
    # (L_{t-1}, L_{t-3}); 1.0005 apart is above 1e-3 x 1000.1 but below 1e-3 x 1001.1
    assert _alt(-1000.0, -2000.0, -1000.9, -2000.0) == (True, False)
    assert _alt(-1000.0, -2000.0, -1001.0005, -2000.0) == (False, False)
    assert _alt(-2000.0, -1000.0, -2000.0, -1000.9) == (False, True)
    assert _alt(-2000.0, -1000.0, -2000.0, -1001.0005) == (False, False)
