"""Figures return PIL images / matplotlib Figures, label their axes and rows, enlarge small images, and never
switch the process-wide matplotlib backend (issue 23)."""

import numpy as np
import pytest
import torch

from diffrep.viz import grid_image, labelled_rows, labelled_rows_image, save_image


def test_grid_image_is_legible_and_exact():
    imgs = torch.zeros(4, 1, 4, 4)
    imgs[1, 0, 0, 0] = 1.0  # one white pixel in the second image
    im = grid_image(imgs, nrow=2, padding=0)
    assert im.size == (2 * 4 * 32, 2 * 4 * 32)  # 4 px images -> 32x -> 128 px per image
    a = np.asarray(im)
    assert a[:32, 128:160].min() == 255 and a[32:, 128:].max() == 0 and a[:, :128].max() == 0
    assert grid_image(torch.zeros(2, 3, 64, 64), scale=1).size == (134, 68)  # padding 2 around each image


def test_labelled_rows_image_equals_the_saved_file(tmp_path):
    from PIL import Image

    rows = torch.rand(2, 3, 1, 8, 8) * 2 - 1
    im = labelled_rows_image(rows, row_labels=["z0", "z1"], title="traversals")
    path = labelled_rows(rows, tmp_path / "a" / "t.png", row_labels=["z0", "z1"], title="traversals")
    assert np.array_equal(np.asarray(im), np.asarray(Image.open(path)))
    assert im.height > 2 * 8 * 4  # rows enlarged 4x plus the title line


def test_matplotlib_figures_keep_the_backend_and_label_axes(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from diffrep.viz import labelled_grid, labelled_grid_figure, training_curves

    backend = matplotlib.get_backend()
    rc_backend = matplotlib.rcParams._get_backend_or_none() if hasattr(matplotlib.rcParams, "_get_backend_or_none") else None
    fig = labelled_grid_figure([torch.rand(3, 1, 4, 4)] * 2, row_labels=["Factor 0", "Factor 1"],
                               col_labels=["a", "b", "c"], xlabel="value", ylabel="latent")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert axes[0].get_ylabel() == "Factor 0" and axes[3].get_ylabel() == "Factor 1" and axes[2].get_title() == "c"
    assert axes[0].get_images()[0].get_interpolation() == "nearest"
    assert labelled_grid([torch.rand(2, 3, 4, 4)], tmp_path / "g.png", row_labels=["r"]).is_file()
    records = [{"step": 1, "loss": 2.0, "lr": 0.1}, {"step": 2, "loss": 1.0, "lr": 0.1, "eval/fast/mig": 0.3}]
    fig = training_curves(records)
    axes = [a for a in fig.get_axes() if a.get_visible()]
    assert [a.get_ylabel() for a in axes] == ["loss", "eval/fast/mig"]
    assert all(a.get_xlabel() == "optimiser step" for a in axes) and axes[0].get_yscale() == "log"
    x, y = axes[0].get_lines()[0].get_data()
    assert list(x) == [1, 2] and list(y) == [2.0, 1.0]
    with pytest.raises(ValueError, match="never logged"):
        training_curves(records, ["gone"])
    assert matplotlib.get_backend() == backend
    if rc_backend is not None:
        assert matplotlib.rcParams._get_backend_or_none() == rc_backend


def test_save_image_scale_and_folder(tmp_path):
    from PIL import Image

    p = save_image(torch.ones(1, 1, 2, 2), tmp_path / "x" / "y.png", padding=0, scale=3)
    assert Image.open(p).size == (6, 6)


def test_save_image_refuses_non_finite_pixels(tmp_path):
    # NaN pixels were written as black: a diverged model's samples looked like a dark image
    x = torch.zeros(2, 1, 4, 4)
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        save_image(x, tmp_path / "nan.png")
    assert not (tmp_path / "nan.png").exists()


def test_a_nan_sample_grid_is_said_and_skipped_not_fatal(tmp_path, capsys):
    # the trainer's periodic grid of a model whose samples are NaN: a message, no black PNG, training goes on
    from torch.utils.data import TensorDataset

    from helpers import TinyLinear
    from diffrep.train import TrainConfig, Trainer

    class NaNSampler(TinyLinear):
        def sample(self, n, *, generator=None):
            return torch.full((n, 1, 4, 4), float("nan"))

    cfg = TrainConfig(steps=2, batch_size=4, ema_decay=0.0, log_every=1, device="cpu", sample_every=1, num_samples=4)
    Trainer(NaNSampler(), TensorDataset(torch.randn(8, 2)), cfg, tmp_path / "run").train()
    assert "step 1: the sample grid holds 64 NaN or infinite values of 64; not saved" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("images/samples/*.png"))
