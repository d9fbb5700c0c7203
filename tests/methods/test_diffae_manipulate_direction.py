"""DiffAE.manipulate's direction: a floating direction (any float dtype, tensor, array or list) is cast to the
model's dtype; integer and boolean directions are refused with a TypeError naming the argument, as the code
checker refuses integer codes."""

import numpy as np
import pytest
import torch

from diffrep.methods.diffae import DiffAE, DiffAEConfig


def _fitted():
    torch.manual_seed(0)
    m = DiffAE(DiffAEConfig(sample_steps=2))
    m.fit_latent_stats(torch.randn(8, 32, generator=torch.Generator().manual_seed(0)))
    return m


def _images(n=2):
    return torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_a_float_direction_in_any_dtype_moves_the_standardised_code_by_scale_along_the_unit_direction():
    m, x = _fitted(), _images()
    w64 = torch.linspace(-1.0, 2.0, 32, dtype=torch.float64)
    out = m.manipulate(x, w64, 1.5, num_steps=2)
    assert out.dtype == torch.float32
    # the same computation from the public verbs: z' = z + s w / |w| on the standardised code, decoded with x's x_T
    z = m.encode(x)
    w = w64.float()
    expected = m.decode(m.denormalize_z(m.normalize_z(z) + 1.5 * w / w.norm()),
                        m.encode_stochastic(x, z, num_steps=2), num_steps=2).clamp(-1, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    for same in (w, w.numpy().astype(np.float64), w.tolist(), w.half().float()):  # every float form, cast alike
        torch.testing.assert_close(m.manipulate(x, same, 1.5, num_steps=2), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("direction, dtype", [(torch.ones(32, dtype=torch.int64), "torch.int64"),
                                              (torch.ones(32, dtype=torch.int32), "torch.int32"),
                                              (torch.ones(32, dtype=torch.bool), "torch.bool"),
                                              (np.ones(32, dtype=np.int16), "torch.int16"),
                                              ([1] + [0] * 31, "torch.int64")])
def test_an_integer_or_boolean_direction_is_refused_naming_the_argument(direction, dtype):
    m = _fitted()
    with pytest.raises(TypeError, match=rf"^direction must be a floating-point tensor, got dtype {dtype}$"):
        m.manipulate(_images(), direction, 1.0, num_steps=1)


def test_fit_attribute_still_takes_integer_labels():
    """The labels share the vector conversion: 0/1 integers stay accepted there, and fit the same w as floats."""
    m = _fitted()
    z = m.denormalize_z(torch.randn(20, 32, generator=torch.Generator().manual_seed(2)))
    y = (torch.arange(20) % 2)
    torch.testing.assert_close(m.fit_attribute(z, y, steps=5), m.fit_attribute(z, y.float(), steps=5), rtol=0, atol=0)
