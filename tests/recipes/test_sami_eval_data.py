"""SAMI's data: ``num_images`` honoured for CelebA and image folders (a fixed subset: the first N in
sorted file order), and evaluation (CLI guides, reference images, FID, global axes) reading held-out
images only -- CelebA's test split, an image folder's files after the training subset (issue 17, 9-10)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.data.celeba import ATTRIBUTES
from diffrep.recipes import sami as R
from diffrep.recipes.sami import SAMIDataConfig, build_dataset

# file k (1-based) of the fixture: 4 train, 1 valid, 2 test images, each a distinct flat grey
PARTITION = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 2, 7: 2}


def _grey(k: int) -> int:
    return 20 + 30 * k  # 50, 80, ..., 230: distinct after JPEG and resizing


def _write_celeba(root):
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = [f"{k:06d}.jpg" for k in PARTITION]
    for k, n in zip(PARTITION, names):
        Image.fromarray(np.full((218, 178, 3), _grey(k), np.uint8)).save(img_dir / n, quality=100)
    rows = [f"{n} " + " ".join(["-1"] * 40) for n in names]
    (root / "list_attr_celeba.txt").write_text("\n".join([str(len(names)), " ".join(ATTRIBUTES), *rows]) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {PARTITION[k]}\n" for k, n in zip(PARTITION, names)))


def _greys(images) -> list[int]:
    """The grey level of each [-1, 1] image (flat images: every pixel the same up to JPEG error)."""
    x = torch.stack([torch.as_tensor(im) for im in images]).double()
    return [int(round(float(v))) for v in ((x.flatten(1).mean(1) + 1) * 127.5)]


def _near(levels, allowed) -> bool:
    return all(min(abs(v - a) for a in allowed) <= 3 for v in levels)


def test_celeba_num_images_is_the_first_n_of_the_split(tmp_path):
    _write_celeba(tmp_path)
    cfg = SAMIDataConfig("celeba", root=str(tmp_path), size=8, num_images=3)
    ds = build_dataset(cfg)
    assert len(ds) == 3 and ds.files == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert _near(_greys([ds[i][0] for i in range(3)]), [_grey(1), _grey(2), _grey(3)])
    # deterministic: the same subset every time
    assert build_dataset(cfg).files == ds.files
    with pytest.raises(ValueError, match="num_images=5.*only 4"):
        build_dataset(SAMIDataConfig("celeba", root=str(tmp_path), size=8, num_images=5))


def test_celeba64_recipe_trains_on_60000_images():
    from diffrep.recipes import get_recipe

    assert get_recipe("sami/celeba64").make_config().data.num_images == 60000


def test_image_folder_subset_and_held_out_remainder(tmp_path):
    for k in range(6):
        Image.fromarray(np.full((10, 10, 3), _grey(k + 1), np.uint8)).save(tmp_path / f"im{k}.png")
    cfg = SAMIDataConfig("image_folder", root=str(tmp_path), size=8, num_images=4)
    train = build_dataset(cfg)
    assert [p.name for p in train.files] == ["im0.png", "im1.png", "im2.png", "im3.png"]
    held, where = R.build_eval_dataset(cfg, 2)
    assert [p.name for p in held.files] == ["im4.png", "im5.png"] and "4..5" in where
    assert _near(_greys([held[i][0] for i in range(2)]), [_grey(5), _grey(6)])
    with pytest.raises(ValueError, match="none is left"):
        R.build_eval_dataset(SAMIDataConfig("image_folder", root=str(tmp_path), size=8, num_images=6))
    with pytest.raises(ValueError, match="holds only 6"):
        build_dataset(SAMIDataConfig("image_folder", root=str(tmp_path), size=8, num_images=7))


def test_cli_guides_and_analyses_read_the_test_split(tmp_path):
    from helpers import tiny_sami, tiny_unet

    from diffrep.cli import main
    from diffrep.cli.sami import _held_out
    from diffrep.methods.sami_nets import SAMIConvNetConfig

    _write_celeba(tmp_path / "data")
    m = tiny_sami(dtype=torch.float32, sampler="ddim", denoiser=tiny_unet(in_channels=3, out_channels=3,
                                                                           use_scale_shift_norm=False),
                  convnet=SAMIConvNetConfig(image_size=8, in_channels=3, base_channels=2, channel_mult=(2, 2),
                                            latent_dim=3))
    run = tmp_path / "run"
    m.save_pretrained(run)
    (run / "config.yaml").write_text(f"data:\n  dataset: celeba\n  root: {tmp_path / 'data'}\n  size: 8\n"
                                     "  num_images: 4\n")
    images = _held_out(run, m, 2, 0)[0]
    test_greys = [_grey(k) for k, s in PARTITION.items() if s == 2]
    assert images.shape == (2, 3, 8, 8) and _near(_greys(images), test_greys)
    assert sorted(_greys(images)) == pytest.approx(sorted(test_greys), abs=3)  # both test images, no train one
    assert main(["sami", "analyze", str(run), "--what", "variability", "--guides", "1", "--num-samples", "2",
                 "--num-images", "2", "--out", str(tmp_path / "an")]) == 0
    rep = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert "test split" in rep["eval_data"]
    # the reference variability is that of the two test images: half their squared distance / D
    d = (test_greys[0] - test_greys[1]) / 127.5
    assert rep["variability"]["v_data"] == pytest.approx(d ** 2 / 4, rel=0.1)
    # a run trained on the test split has nothing held out: refused with a message
    (run / "config.yaml").write_text(f"data:\n  dataset: celeba\n  root: {tmp_path / 'data'}\n  size: 8\n"
                                     "  split: test\n  num_images: 2\n")
    assert main(["sami", "sample", str(run), "--mode", "cond", "--n", "1", "--guides", "1",
                 "--out", str(tmp_path / "x.png")]) == 2
