"""variability's input messages and the centring by the sample mean over N (found by mutation testing,
2026-12-07)."""

import pytest
import torch

from diffrep.analysis.variability import variability


def test_messages_name_samples():
    with pytest.raises(ValueError, match="^samples contain NaN or inf$"):
        variability(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(TypeError, match="^samples must"):
        variability("x")


def test_square_sample_set_centres_over_samples_not_pixels():
    """N = D = 2: [[0, 4], [2, 0]] has mean (1, 2); squared distances 1 + 4 each -> V = 5, per pixel 2.5
    (centring over the pixels of each sample instead would give 4 and 1, V = 2.5)."""
    v = variability(torch.tensor([[0.0, 4.0], [2.0, 0.0]]))
    assert v["v_sum"] == pytest.approx(5.0) and v["v_per_pixel"] == pytest.approx(2.5)
