"""PCA(1) per vector-valued unit (DisDiff / DyGA evaluation; docs/metrics.md): values against an
eigendecomposition written here, with the fit sample, the returned components and the wrapper."""

import numpy as np
import pytest
import torch

from diffrep.metrics.pca import pca1_representation, pca1_units


def _top(x):
    """Mean and first principal direction of (N, k) rows, sign: largest-magnitude entry positive."""
    m = x.mean(0)
    w, v = np.linalg.eigh((x - m).T @ (x - m))
    c = v[:, -1]
    return m, c * np.sign(c[np.argmax(np.abs(c))])


def _units(n=30, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 2, 3) @ np.diag([3.0, 1.0, 0.3]) + np.array([[1.0, -2.0, 5.0], [0.0, 4.0, -1.0]])


def test_fit_on_another_sample_centres_and_projects_with_its_mean_and_component():
    x, f = _units(7, 1), _units(40, 2)
    out, mean, comp = pca1_units(torch.as_tensor(x), fit_on=torch.as_tensor(f), return_components=True)
    assert out.dtype == torch.float64 and tuple(out.shape) == (7, 2)
    for u in range(2):
        m, c = _top(f[:, u])
        np.testing.assert_allclose(mean[u].numpy(), m, atol=1e-12)
        np.testing.assert_allclose(comp[u].numpy(), c, atol=1e-10)
        np.testing.assert_allclose(out[:, u].numpy(), (x[:, u] - m) @ c, atol=1e-10)
    # without return_components only the scalars come back
    assert isinstance(pca1_units(x, fit_on=f), torch.Tensor)


def test_sign_rule_makes_the_largest_entry_positive_even_when_it_is_negative_in_the_data():
    # one direction (-3, 1) / sqrt(10): its largest-magnitude entry is negative in the data's terms
    t = np.linspace(-2, 2, 9)
    x = (t[:, None] * np.array([-3.0, 1.0]) / np.sqrt(10))[:, None, :]
    out, _, comp = pca1_units(x, return_components=True)
    np.testing.assert_allclose(comp[0].numpy(), np.array([3.0, -1.0]) / np.sqrt(10), atol=1e-12)
    np.testing.assert_allclose(out[:, 0].numpy(), -t, atol=1e-12)


def test_one_dimensional_units_pass_through_centred():
    x = np.array([[[2.0]], [[-1.0]], [[5.0]]])
    np.testing.assert_allclose(pca1_units(x).numpy()[:, 0], [0.0, -3.0, 3.0], atol=1e-12)


def test_fit_on_with_other_unit_shape_is_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"fit_on: shape \(4, 2, 2\) does not match units \(5, 2, 3\) after N"):
        pca1_units(np.zeros((5, 2, 3)), fit_on=np.zeros((4, 2, 2)))


@pytest.mark.parametrize("flat", [True, False])
def test_representation_fits_once_and_projects_new_observations(flat):
    f, x = _units(40, 3), _units(6, 4)

    def rep(obs):  # observations are row indices into a fixed table of codes
        codes = np.concatenate([f, x])[np.asarray(obs, int)]
        return torch.as_tensor(codes.reshape(len(codes), -1) if flat else codes, dtype=torch.float32)

    fn = pca1_representation(rep, 2, np.arange(40))
    got = fn(np.arange(40, 46))
    assert isinstance(got, np.ndarray) and got.shape == (6, 2)
    f32, x32 = f.astype(np.float32).astype(float), x.astype(np.float32).astype(float)
    for u in range(2):
        m, c = _top(f32[:, u])
        np.testing.assert_allclose(got[:, u], (x32[:, u] - m) @ c, atol=1e-9)


def test_representation_accepts_numpy_codes_and_codes_that_require_grad():
    w = torch.ones(4, requires_grad=True)
    fit = np.random.RandomState(0).rand(10, 4)
    fn = pca1_representation(lambda o: torch.as_tensor(o) * w, 2, fit)
    ref = pca1_representation(lambda o: np.asarray(o), 2, fit)
    np.testing.assert_allclose(fn(fit[:3]), ref(fit[:3]), atol=1e-12)
    np.testing.assert_allclose(ref(fit), pca1_units(fit.reshape(10, 2, 2)).numpy(), atol=1e-12)


def test_representation_refusals_name_the_problem():
    fit = np.zeros((4, 4))
    with pytest.raises(TypeError, match="representation_fn must be a callable, got int"):
        pca1_representation(3, 2, fit)
    with pytest.raises(ValueError, match="num_units must be a positive int"):
        pca1_representation(lambda o: o, 0, fit)
    with pytest.raises(TypeError, match="numeric codes, got dtype <U1"):
        pca1_representation(lambda o: np.array([["a"] * 4] * 4), 2, fit)
    with pytest.raises(TypeError, match="real codes, got torch.complex64"):
        pca1_representation(lambda o: torch.zeros(4, 4, dtype=torch.complex64), 2, fit)
    shapes = {"odd width": (4, 3), "3-D with other units": (4, 3, 2), "no rows": (0, 4), "no width": (4, 0),
              "1-D": (4,), "4-D": (4, 2, 1, 2)}
    for name, shape in shapes.items():
        with pytest.raises(ValueError, match=rf"num_units = 2, got shape \({shape[0]},"):
            pca1_representation(lambda o, s=shape: torch.zeros(s), 2, fit)
    with pytest.raises(ValueError, match="representation_fn returned codes with NaN or inf"):
        pca1_representation(lambda o: torch.full((4, 4), float("inf")), 2, fit)
    # (N, U, k) with the right number of units is accepted as it is
    pca1_representation(lambda o: torch.randn(4, 2, 3), 2, fit)


def test_float32_units_and_fit_sample_are_computed_in_float64():
    x32 = torch.as_tensor(_units(9, 5), dtype=torch.float32)
    f32 = torch.as_tensor(_units(30, 6), dtype=torch.float32)
    out, mean, comp = pca1_units(x32, fit_on=f32, return_components=True)
    assert out.dtype == mean.dtype == comp.dtype == torch.float64
    x, f = x32.double().numpy(), f32.double().numpy()
    for u in range(2):
        m, c = _top(f[:, u])
        np.testing.assert_allclose(out[:, u].numpy(), (x[:, u] - m) @ c, atol=1e-11)
    # units in float32 fitted on themselves: float64 arithmetic too
    np.testing.assert_allclose(pca1_units(x32).numpy(), pca1_units(x32.double()).numpy(), atol=1e-13)


def test_every_component_has_its_largest_entry_positive():
    # 64 random units: the raw SVD returns some components with a negative largest entry
    x = np.random.RandomState(7).randn(20, 64, 3)
    out, _, comp = pca1_units(x, return_components=True)
    c = comp.numpy()
    assert (c[np.arange(64), np.abs(c).argmax(1)] > 0).all()
    for u in range(64):
        np.testing.assert_allclose(c[u], _top(x[:, u])[1], atol=1e-9)


def test_representation_of_one_row_and_of_scalar_units():
    f = np.random.RandomState(1).rand(12, 3)
    fn = pca1_representation(lambda o: torch.as_tensor(o), 3, f)  # num_units = width: k = 1, centred only
    np.testing.assert_allclose(fn(f[:1]), f[:1] - f.mean(0), atol=1e-12)
    one = pca1_representation(lambda o: torch.as_tensor(o)[:, :1], 1, f)  # width 1, one unit
    np.testing.assert_allclose(one(f[5:6])[:, 0], f[5:6, 0] - f[:, 0].mean(), atol=1e-12)
