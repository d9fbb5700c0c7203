"""Names that left diffrep.ops still resolve: the moved ones as deprecated aliases of their new
homes, the HDDC fit as a plain lazy re-export."""

import importlib

import pytest
import torch

MOVED = [
    ("diffrep.ops.bfn", name, "diffrep.bfn.schedules", name)
    for name in ("gamma", "continuous_precision", "continuous_alpha", "discrete_beta", "discrete_alpha")
] + [
    ("diffrep.ops.bfn", "noise_pred_to_data_pred", "diffrep.bfn.conversions", "noise_pred_to_data_pred"),
    ("diffrep.ops.bfn", "output_normal_params", "diffrep.bfn.conversions", "output_normal_params"),
    ("diffrep.ops.bfn", "discretized_log_prob", "diffrep.bfn.distributions", "discretised_log_prob"),
    ("diffrep.ops.bfn", "discretized_probs", "diffrep.ops.bfn", "discretised_probs"),
    ("diffrep.ops.bfn", "discretized_continuous_time_loss", "diffrep.ops.bfn", "discretised_continuous_time_loss"),
    ("diffrep.ops.bfn", "continuous_time_loss", "diffrep.bfn.loss_terms", "continuous_time_loss"),
    ("diffrep.ops.bfn", "continuous_discrete_time_loss", "diffrep.bfn.loss_terms", "continuous_discrete_time_loss"),
    ("diffrep.ops.bfn", "discretized_discrete_time_loss", "diffrep.bfn.loss_terms", "discretised_discrete_time_loss"),
    ("diffrep.ops.reference.bfn", "continuous_alpha", "diffrep.bfn.schedules", "continuous_alpha"),
    ("diffrep.ops.reference.bfn", "discretized_log_prob", "diffrep.bfn.distributions", "discretised_log_prob"),
    ("diffrep.ops.reference.bfn", "discretized_probs", "diffrep.ops.reference.bfn", "discretised_probs"),
    ("diffrep.ops.reference.bfn", "discretized_mean", "diffrep.ops.reference.bfn", "discretised_mean"),
    ("diffrep.ops.reference.bfn", "discretized_continuous_time_loss", "diffrep.ops.reference.bfn",
     "discretised_continuous_time_loss"),
    ("diffrep.bfn", "DiscretizedNormalOutput", "diffrep.bfn.distributions", "DiscretisedNormalOutput"),
    ("diffrep.bfn.distributions", "DiscretizedNormalOutput", "diffrep.bfn.distributions", "DiscretisedNormalOutput"),
    ("diffrep.bfn.distributions", "DiscretizedNormalDist", "diffrep.bfn.distributions", "DiscretisedNormalDist"),
    ("diffrep.bfn.distributions", "discretized_log_prob", "diffrep.bfn.distributions", "discretised_log_prob"),
    ("diffrep.bfn.loss_terms", "discretized_discrete_time_loss", "diffrep.bfn.loss_terms",
     "discretised_discrete_time_loss"),
    ("diffrep.metrics.mig", "discretized_mi", "diffrep.metrics.mig", "discretised_mi"),
    ("diffrep.ops.hddc", "align", "diffrep.methods.dyga", "align"),
    ("diffrep.cluster", "align", "diffrep.methods.dyga", "align"),
    ("diffrep.ops.reference.hddc", "kmeans_labels", "diffrep.cluster.kmeans", "kmeans_labels"),
    ("diffrep.ops.reference.hddc", "nearest_centre", "diffrep.cluster.kmeans", "nearest_centre"),
    ("diffrep.ops.reference.hddc", "bic", "diffrep.cluster.em", "bic"),
    ("diffrep.ops.reference.hddc", "n_free_params", "diffrep.cluster.em", "n_free_params"),
    ("diffrep.ops.reference.hddc", "MIN_COUNT", "diffrep.cluster.em", "MIN_COUNT"),
]


@pytest.mark.parametrize("old_module, old, new_module, new", MOVED)
def test_old_name_warns_and_is_the_new_object(old_module, old, new_module, new):
    with pytest.warns(DeprecationWarning, match=f"{new_module}.{new}"):
        got = getattr(importlib.import_module(old_module), old)
    assert got is getattr(importlib.import_module(new_module), new)


def test_old_name_still_computes():
    from diffrep.ops import bfn

    with pytest.warns(DeprecationWarning):
        g = bfn.gamma(0.5, 0.1)
    assert g.item() == pytest.approx(0.9, rel=1e-14)


@pytest.mark.parametrize("name", ["fit", "HDDCResult", "SPLIT_RULES"])
def test_hddc_fit_is_a_thin_reexport(name, recwarn):
    from diffrep.cluster import hddc as new
    from diffrep.ops import hddc as old

    assert getattr(old, name) is getattr(new, name)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_hddc_result_align_method_warns_and_delegates():
    from diffrep.cluster import fit
    from diffrep.methods import dyga

    x = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = fit(x, 2, 2, split=False)
    c = x.transpose(0, 1)[:5]
    with pytest.warns(DeprecationWarning, match="diffrep.methods.dyga.align"):
        old = r.align(c, gumbel=False)
    assert torch.equal(old, dyga.align(r, c, gumbel=False))


def test_unknown_names_still_raise():
    from diffrep.ops import bfn, hddc

    for mod in (bfn, hddc):
        with pytest.raises(AttributeError):
            mod.no_such_name  # noqa: B018


def test_explain_accepts_the_old_discretized_op_names():
    import torch

    from diffrep.ops import explain

    mu, sigma = torch.zeros(4), torch.ones(4)
    with pytest.warns(DeprecationWarning, match="spelled 'discretised'"):
        old = explain("bfn.discretized_probs", mu, sigma, 16)
    assert old.backend == explain("bfn.discretised_probs", mu, sigma, 16).backend
