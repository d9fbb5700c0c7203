"""Regressions from the robustness audit of the metric functions (2026-12-07): arguments outside their
domain are ValueErrors naming them, never torch-internal errors or silently degenerate scores."""

import numpy as np
import pytest
import torch

from diffrep import _checks
from diffrep.data import ArrayGroundTruthData
from diffrep.metrics import dci, factor_vae_score, lr_participation_ratio, straightness


def _split(rng, n=90):
    f = rng.integers(0, 3, (n, 2))
    c = np.concatenate([f + 0.1 * rng.standard_normal((n, 2)), rng.standard_normal((n, 1))], 1)
    return c[:60], f[:60], c[60:], f[60:]


@pytest.mark.parametrize("bins", [0, 1, 2.5, True])
def test_dci_max_bins_below_two_is_refused(bins):
    # 0: torch "number of steps must be non-negative"; 1: no threshold, every score 0
    with pytest.raises(ValueError, match=r"^max_bins must be an int >= 2"):
        dci(*_split(np.random.default_rng(0)), max_bins=bins)


def test_straightness_eps():
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0]])  # steps: right, right, up
    assert straightness(t)["straightness"] == pytest.approx(0.5)  # cosines 1 and 0
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=r"^eps must be"):
            straightness(t, eps=bad)


def test_lr_participation_ratio_wants_binary_attributes():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 3))
    with pytest.raises(ValueError, match=r"^attributes must be binary \(0/1\), got values \[0, 1, 2\]"):
        lr_participation_ratio(z, rng.integers(0, 3, (40, 1)))  # took the first class's weights


def _toy_dataset():
    rng = np.random.default_rng(0)
    return ArrayGroundTruthData(rng.random((12, 1, 4, 4)).astype(np.float32), ["a", "b"], [4, 3])


def _rep(x):
    return torch.as_tensor(x).reshape(len(x), -1)[:, :4].float()


def test_factor_vae_representation_rows_must_match():
    # one row for a batch gave variance NaN -> "no active code" -> both scores 0
    with pytest.raises(ValueError, match=r"^representation_fn: returned 1 rows of codes for 8 observations"):
        factor_vae_score(_toy_dataset(), lambda x: _rep(x)[:1], num_train=4, num_eval=4, num_variance_estimate=8,
                         batch_size=4)


def test_factor_vae_threshold_must_be_non_negative():
    with pytest.raises(ValueError, match=r"^threshold must be >= 0, got -1.0"):
        factor_vae_score(_toy_dataset(), _rep, threshold=-1.0, num_train=4, num_eval=4, num_variance_estimate=8)


def test_shared_validators_shape_device_non_negative_float():
    assert _checks.shape((2, 0, 3)) == (2, 0, 3) and _checks.shape(4) == (4,)
    for bad in ((-1, 4), (2.0,), (True,)):
        with pytest.raises(ValueError, match=r"^shape must be a sequence of non-negative ints"):
            _checks.shape(bad)
    with pytest.raises(TypeError, match=r"^shape must be a sequence"):
        _checks.shape(None)
    assert _checks.device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device must be a torch device"):
        _checks.device("tpu")
    with pytest.raises(ValueError, match=r"no such CUDA device is usable here"):
        _checks.device(f"cuda:{torch.cuda.device_count()}")
    assert _checks.non_negative_float(0, "w") == 0.0
    with pytest.raises(ValueError, match=r"^w must be >= 0"):
        _checks.non_negative_float(-0.5, "w")


def test_string_codes_are_named():
    from diffrep.metrics import mig

    # torch.from_numpy's "can't convert np.ndarray of type numpy.str_" named no argument
    with pytest.raises(TypeError, match=r"^codes: expected a numeric array, got dtype <U1"):
        mig(np.array([["a", "b"]] * 4), np.zeros((4, 1), dtype=int))


def test_factor_vae_device_is_checked_first():
    calls = []

    def rep(x):
        calls.append(len(x))
        return _rep(x)

    with pytest.raises(ValueError, match=r"^device must be a torch device"):
        factor_vae_score(_toy_dataset(), rep, device="tpu", num_train=4, num_eval=4, num_variance_estimate=8)
    assert calls == []  # was torch's RuntimeError after the variance sample was encoded


@pytest.mark.parametrize("fn, kw, name", [
    ("factor_vae_score", dict(batch_size=0), "batch_size"),     # numpy "cannot reshape array of size 0"
    ("factor_vae_score", dict(num_train=0), "num_train"),       # numpy "need at least one array to stack"
    ("beta_vae_score", dict(batch_size=0), "batch_size"),
    ("downstream_task_score", dict(sizes=(10, 0)), r"sizes\[1\]"),
    ("downstream_task_score", dict(sizes=()), "sizes"),
    ("evaluate", dict(num_train=0), "num_train"),
])
def test_protocol_sample_sizes_are_named(fn, kw, name):
    import diffrep.metrics as M

    with pytest.raises(ValueError, match=rf"^{name} must be a "):
        getattr(M, fn)(_toy_dataset(), _rep, **kw)


def test_evaluate_takes_one_metric_name_as_a_string():
    import diffrep.metrics as M

    r = M.evaluate(_toy_dataset(), _rep, metrics="mig", num_train=12, num_test=12)  # was "unknown ['m', 'i', 'g']"
    assert set(r) == {"mig"}


def test_dci_n_jobs_and_auroc_min_range_are_checked():
    # n_jobs 0 or negative ran serially without a word; a negative min_range evaluated constant rows
    from diffrep.metrics.dci import fit_factors
    from diffrep.ops.metrics import auroc_grid

    x, y = torch.randn(20, 3), torch.randint(0, 2, (20, 2))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be an int >= 1, or -1"):
            fit_factors(x, y, x, n_jobs=bad)
    imp, _, _ = fit_factors(x, y, x, n_jobs=-1)
    assert imp.shape == (3, 2)
    with pytest.raises(ValueError, match="min_range must be >= 0"):
        auroc_grid(torch.rand(2, 20), torch.rand(2, 20) > 0.5, min_range=-0.1)
