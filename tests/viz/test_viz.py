import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.viz import (interpolation_strip, labelled_grid, latent_swap_grid, lerp, make_grid, save_gif, save_image, slerp,
                         to_pil, traversal_frames, traversal_grid)


def test_make_grid_exact_canvas():
    # 3 images of 2x2, pad 1, nrow 2 -> 2 rows, 2 cols: canvas 3 x (2*3+1) x (2*3+1)
    x = torch.stack([torch.full((3, 2, 2), float(v)) for v in (1, 2, 3)])
    g = make_grid(x, nrow=2, padding=1, pad_value=9)
    assert g.shape == (3, 7, 7)
    expected = torch.full((7, 7), 9.0)
    expected[1:3, 1:3], expected[1:3, 4:6], expected[4:6, 1:3] = 1, 2, 3
    for c in range(3):
        torch.testing.assert_close(g[c], expected)


def test_make_grid_semantics():
    x = torch.linspace(-1, 1, 8).reshape(2, 1, 2, 2)
    before = x.clone()
    g = make_grid(x, nrow=4, padding=0, normalize=True, value_range=(-1, 1))
    torch.testing.assert_close(x, before)  # input untouched
    assert g.shape == (3, 2, 4)  # grayscale repeated to 3 channels; min(nrow, B) columns
    assert g.min() == 0 and g.max() == 1
    one = torch.rand(3, 5, 5)
    torch.testing.assert_close(make_grid(one), one)  # a batch of one returns the image
    lst = make_grid([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)], padding=0)
    assert lst.shape == (3, 2, 4)
    se = make_grid(torch.stack([torch.zeros(1, 2, 2) + 5, torch.arange(4.).reshape(1, 2, 2)]), normalize=True, scale_each=True, padding=0)
    assert se[0, :, 2:].max() == 1 and se[0, :, 2:].min() == 0
    with pytest.raises(ValueError, match="differ in shape"):
        make_grid([torch.zeros(3, 2, 2), torch.zeros(3, 3, 3)])
    with pytest.raises(ValueError, match="nrow"):
        make_grid(x, nrow=0)
    with pytest.raises(TypeError):
        make_grid("img")


def test_save_image_png_values(tmp_path):
    x = torch.tensor([-1.0, 0.0, 1.0, 0.5]).reshape(1, 1, 2, 2).repeat(1, 3, 1, 1)
    p = save_image(x, tmp_path / "a" / "x.png", value_range=(-1, 1))
    arr = np.asarray(Image.open(p))
    assert arr.shape == (2, 2, 3)
    assert arr[..., 0].tolist() == [[0, 128], [255, 191]]  # (v+1)/2*255 + 0.5, truncated
    assert to_pil(torch.zeros(1, 4, 4)).mode == "L"


def test_gif(tmp_path):
    frames = [torch.full((3, 4, 4), v) for v in (0.0, 0.5, 1.0)]
    p = save_gif(frames, tmp_path / "t.gif", duration_ms=50)
    im = Image.open(p)
    assert im.n_frames == 3
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "e.gif")


def test_lerp_slerp():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    s = slerp(a, b, t)
    torch.testing.assert_close(s[0], a)
    torch.testing.assert_close(s[2], b)
    torch.testing.assert_close(s[1], torch.tensor([2**-0.5, 2**-0.5]))  # stays on the unit circle
    torch.testing.assert_close(lerp(a, b, t)[1], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(slerp(a, 2 * a, t)[1], 1.5 * a)  # parallel: falls back to lerp
    with pytest.raises(ValueError, match="differ in shape"):
        slerp(a, torch.zeros(3), t)


def _decode(z):  # code [M, d] -> image [M, 1, 2, d]: row values copy the code
    return z[:, None, None, :].repeat(1, 1, 2, 1)


def test_traversals_and_strip():
    z = torch.zeros(3)
    g = traversal_grid(_decode, z, [-1.0, 1.0], dims=[0, 2], padding=0)
    assert g.shape == (3, 4, 6)
    assert g[0, 0, :3].tolist() == [-1, 0, 0] and g[0, 0, 3:].tolist() == [1, 0, 0]
    assert g[0, 2, :3].tolist() == [0, 0, -1]
    frames = traversal_frames(_decode, z, [-2.0, 0.0, 2.0], padding=0)
    assert len(frames) == 3 and frames[0][0, 0, :3].tolist() == [-2, 0, 0]
    strip = interpolation_strip(_decode, torch.zeros(2), torch.ones(2), n=5)
    assert strip.shape == (5, 1, 2, 2) and strip[2, 0, 0].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="single code"):
        traversal_grid(_decode, torch.zeros(2, 3), [0.0])


def test_latent_swap_grid():
    targets = torch.zeros(2, 3)
    source = torch.tensor([1.0, 2.0, 3.0])
    g = latent_swap_grid(_decode, targets, source, padding=0)
    assert g.shape == (3, 8, 6)  # first row: the targets; then one row per unit
    assert g[0, 0].tolist() == [0] * 6
    assert g[0, 2, :3].tolist() == [1, 0, 0] and g[0, 4, :3].tolist() == [0, 2, 0] and g[0, 6, 3:].tolist() == [0, 0, 3]
    tokens = latent_swap_grid(lambda z: _decode(z.sum(-1)), torch.zeros(2, 3, 4), torch.ones(3, 4), padding=0)
    assert tokens.shape == (3, 8, 6)


def test_labelled_grid_needs_matplotlib_or_draws(tmp_path):
    rows = [torch.rand(2, 3, 4, 4)] * 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install matplotlib"):
            labelled_grid(rows, tmp_path / "f.png", row_labels=["Factor 0", "Factor 1"])
        return
    assert labelled_grid(rows, tmp_path / "f.png", row_labels=["Factor 0", "Factor 1"]).is_file()
