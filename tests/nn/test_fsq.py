"""FSQ (Mentzer et al. 2023): bound, rounding, straight-through gradient and the implicit codebook,
checked against hand computations with ``math`` (independent of the module's tensors)."""

from __future__ import annotations

import math

import pytest
import torch

from diffrep.nn.fsq import FSQ, fsq_bound, round_ste

LEVELS = [8, 5, 5]


def _bound_ref(z: float, L: int, eps: float = 1e-3, shift: str = "tan") -> float:
    h = (L - 1) * (1 - eps) / 2
    off = 0.5 if L % 2 == 0 else 0.0
    s = math.tan(off / h) if shift == "tan" else math.atanh(off / h)
    return math.tanh(z + s) * h - off


@pytest.mark.parametrize("shift", ["tan", "atanh"])
def test_bound_matches_the_listing(shift):
    z = torch.tensor([[-2.0, 0.3, 1.7], [0.0, -0.4, 5.0], [0.9, 0.0, -9.0]], dtype=torch.float64)
    got = FSQ(LEVELS, shift=shift).bound(z)
    want = torch.tensor([[_bound_ref(float(z[i, j]), LEVELS[j], shift=shift) for j in range(3)] for i in range(3)],
                        dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    torch.testing.assert_close(fsq_bound(z, LEVELS, shift=shift), want, rtol=0, atol=1e-14)


def test_quantize_values_by_hand():
    fsq = FSQ(LEVELS)
    z = torch.tensor([[50.0, 50.0, 50.0], [-50.0, -50.0, -50.0], [0.0, 0.0, 0.0],
                      [math.atanh(1.2 / 3.4965) - math.tan(0.5 / 3.4965), math.atanh(0.6 / 1.998), math.atanh(-1.4 / 1.998)]],
                     dtype=torch.float64)
    codes = fsq(z)
    # L=8: bound in (-3.9965, 2.9965) -> integers -4..3 -> /4; L=5: (-1.998, 1.998) -> -2..2 -> /2.
    # Row 4: f = 1.2 - 0.5 = 0.7 -> 1 -> 0.25; 0.6 -> 1 -> 0.5; -1.4 -> -1 -> -0.5.
    want = torch.tensor([[0.75, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0], [0.25, 0.5, -0.5]], dtype=torch.float64)
    torch.testing.assert_close(codes, want, rtol=0, atol=0)


@pytest.mark.parametrize("levels", [[8, 5, 5], [2, 3, 4, 7], [16]])
def test_each_channel_takes_exactly_L_values(levels):
    fsq = FSQ(levels)
    z = torch.linspace(-12, 12, 20001, dtype=torch.float64).unsqueeze(1).expand(-1, len(levels))
    codes = fsq(z)
    for i, L in enumerate(levels):
        vals = torch.unique(codes[:, i])
        assert vals.numel() == L
        hw = L // 2
        torch.testing.assert_close(vals, (torch.arange(L, dtype=torch.float64) - hw) / hw)


def test_round_ste_forward_rounds_backward_identity():
    x = torch.tensor([-1.6, -0.5, 0.49, 0.5, 1.5, 2.51], dtype=torch.float64, requires_grad=True)
    y = round_ste(x)
    torch.testing.assert_close(y.detach(), torch.tensor([-2.0, -0.0, 0.0, 0.0, 2.0, 3.0], dtype=torch.float64))
    w = torch.tensor([1.0, -2.0, 3.0, 0.5, 7.0, -1.0], dtype=torch.float64)
    (g,) = torch.autograd.grad((w * y).sum(), x)
    torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_straight_through_gradient_is_the_bound_derivative():
    fsq = FSQ(LEVELS)
    z = torch.tensor([[0.2, -0.7, 1.1], [-1.3, 0.05, 0.4]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, 2.0, -3.0], [0.5, -1.0, 4.0]], dtype=torch.float64)
    (g,) = torch.autograd.grad((w * fsq(z)).sum(), z)
    want = torch.empty_like(g)
    for i in range(2):
        for j, L in enumerate(LEVELS):
            h = (L - 1) * (1 - 1e-3) / 2
            s = math.tan((0.5 if L % 2 == 0 else 0.0) / h)
            want[i, j] = float(w[i, j]) * h * (1 - math.tanh(float(z.detach()[i, j]) + s) ** 2) / (L // 2)
    torch.testing.assert_close(g, want, rtol=1e-12, atol=0)


def test_codebook_indices_by_hand_and_round_trip():
    fsq = FSQ(LEVELS)
    assert fsq.codebook_size == 200
    codes = torch.tensor([[-1.0, -1.0, -1.0], [0.75, 1.0, 1.0], [0.0, 0.0, 0.0], [-0.75, 0.5, -0.5]])
    # digits (0,0,0) -> 0; (7,4,4) -> 7 + 8*4 + 40*4 = 199; (4,2,2) -> 4 + 16 + 80 = 100; (1,3,1) -> 1 + 24 + 40 = 65.
    assert fsq.codes_to_indices(codes).tolist() == [0, 199, 100, 65]
    torch.testing.assert_close(fsq.indices_to_codes(torch.tensor([0, 199, 100, 65])), codes)
    idx = torch.arange(200)
    assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(idx)), idx)
    book = fsq.codebook(torch.float64)
    assert book.shape == (200, 3) and torch.unique(book, dim=0).shape[0] == 200
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    torch.testing.assert_close(book[fsq.indices(z)], fsq(z))


def test_channel_axis_option_matches_last_axis():
    z = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    a = FSQ(LEVELS, dim=1)(z)
    b = FSQ(LEVELS)(z.movedim(1, -1)).movedim(-1, 1)
    assert torch.equal(a, b)
    assert FSQ(LEVELS, dim=1).indices(z).shape == (2, 4, 5)
    assert FSQ(LEVELS, dim=1).indices_to_codes(torch.zeros(2, 4, 5, dtype=torch.long)).shape == (2, 3, 4, 5)


def test_atanh_shift_centres_even_levels():
    z0 = torch.zeros(1, 3, dtype=torch.float64)
    torch.testing.assert_close(FSQ(LEVELS, shift="atanh").bound(z0), z0, rtol=0, atol=1e-15)
    assert abs(float(FSQ(LEVELS).bound(z0)[0, 0])) > 1e-8  # the listing's tan is not exact


@pytest.mark.parametrize("kwargs, err", [
    (dict(levels=[8, 1]), "levels\\[1\\]"), (dict(levels=[]), "at least one"), (dict(levels="85"), "sequence"),
    (dict(levels=[8, 5.0]), "levels\\[1\\]"), (dict(levels=[8], eps=1.0), "eps"), (dict(levels=[8], shift="sin"), "shift"),
    (dict(levels=[8], dim=1.0), "dim"),
])
def test_construction_errors(kwargs, err):
    kwargs = dict(kwargs)
    levels = kwargs.pop("levels")
    with pytest.raises((ValueError, TypeError), match=err):
        FSQ(levels, **kwargs)


def test_input_errors():
    fsq = FSQ(LEVELS)
    with pytest.raises(ValueError, match="3 channels"):
        fsq(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        fsq(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        FSQ(LEVELS, dim=3)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="not on the FSQ grid"):
        fsq.codes_to_indices(torch.tensor([[1.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="lie in"):
        fsq.indices_to_codes(torch.tensor([200]))
    with pytest.raises(TypeError, match="integer"):
        fsq.indices_to_codes(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="floating-point"):
        round_ste(torch.tensor([1]))


def test_fsq_details_from_mutation_testing():
    """Each line here kills a mutant that survived the value tests (benches/results/mutation_vae_2026-12-06.md)."""
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    fsq = FSQ(LEVELS)
    assert fsq.state_dict() == {}  # constants, not weights: nothing to save
    assert fsq(z).dtype == torch.float32 and fsq.bound(z).dtype == torch.float32
    torch.testing.assert_close(fsq_bound(z, LEVELS), fsq.bound(z))
    want = torch.tensor([[_bound_ref(float(z[i, j]), LEVELS[j], eps=0.1) for j in range(3)] for i in range(4)])
    torch.testing.assert_close(fsq_bound(z, LEVELS, eps=0.1), want)
    FSQ(LEVELS, eps=0.0)  # eps = 0 is allowed (no shrink)
    torch.testing.assert_close(FSQ(LEVELS, dim=-2)(z.T), fsq(z).T)
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        FSQ(LEVELS, dim=2)(z)
    with pytest.raises(ValueError, match="^FSQ.bound: z must have at least one axis"):
        FSQ([5]).bound(torch.tensor(1.0))
    with pytest.raises(ValueError, match="^FSQ.codes_to_indices: codes are not on the FSQ grid"):
        fsq.codes_to_indices(torch.tensor([[0.0, 1.5, 0.0]]))  # digit 5 of an L = 5 channel
    with pytest.raises(TypeError, match="^FSQ.indices_to_codes: indices must be an integer tensor"):
        fsq.indices_to_codes(torch.tensor([True]))
    with pytest.raises(TypeError, match="^FSQ.bound: z must be a floating-point tensor"):
        fsq.bound(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="^FSQ.codes_to_indices: codes must be a floating-point"):
        fsq.codes_to_indices(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="^FSQ.codes_to_indices: z must have 3 channels"):
        fsq.codes_to_indices(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="^FSQ: z must have 3 channels"):
        fsq(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="^FSQ.bound: z must be a tensor, got list"):
        fsq.bound([1.0])
    with pytest.raises(TypeError, match="^levels must be a sequence of ints, got int"):
        FSQ(5)
    with pytest.raises(ValueError, match=r"^levels must name at least one channel, got \[\]$"):
        FSQ([])
    with pytest.raises(ValueError, match="^eps must be a finite number"):
        FSQ(LEVELS, eps=float("nan"))
    with pytest.raises(ValueError, match="^shift must be one of"):
        FSQ(LEVELS, shift="x")
    with pytest.raises(TypeError, match="^dim must be an int, got float"):
        FSQ(LEVELS, dim=1.0)
    with pytest.raises(TypeError, match="^round_ste: x must be a floating-point tensor, got Tensor"):
        round_ste(torch.tensor([1]))
