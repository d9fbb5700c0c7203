"""load() source selection and errors, (seed, epoch) shuffling, DataLoader workers, and the CLI."""

import json

import numpy as np
import pytest
import torch

import diffrep.data as D
from diffrep.data.sampling import EpochBatchSampler, epoch_permutation, make_loader
from diffrep.data.shapes3d import Shapes3DFile


def test_load_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    assert D.load("dsprites").source == "procedural"
    assert D.load("dsprites", source="procedural").factor_sizes == (3, 6, 40, 32, 32)
    assert D.load("disks", size=16).observation_shape == (16, 16, 1)
    assert D.load("digits", split="test").split == "test"
    with pytest.raises(FileNotFoundError, match="dsprites.*dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"):
        D.load("dsprites", root=tmp_path, source="file")
    with pytest.raises(FileNotFoundError, match="cifar10.*data_batch"):
        D.load("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="no procedural generator"):
        D.load("celeba", source="procedural")
    with pytest.raises(ValueError, match="procedural only"):
        D.load("disks", source="file")
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load("imagenet")
    with pytest.raises(ValueError, match="source"):
        D.load("dsprites", source="web")
    with pytest.raises(ValueError, match="splits"):
        D.load("dsprites", split="train")
    # auto prefers the file when present
    labels = np.stack(np.unravel_index(np.arange(16), (2, 2, 2, 2, 1, 1)), 1).astype(float)
    np.savez(tmp_path / "3dshapes.npz", images=np.zeros((16, 4, 4, 3), np.uint8), labels=labels)
    ds = D.load("shapes3d", root=tmp_path)
    assert isinstance(ds, Shapes3DFile) and ds.factor_sizes == (2, 2, 2, 2, 1, 1)
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path))
    assert isinstance(D.load("shapes3d"), Shapes3DFile)
    assert set(D.available()) == {"dsprites", "shapes3d", "mpi3d_toy", "mpi3d_realistic", "mpi3d_real",
                                  "cars3d", "celeba", "mnist", "fashion_mnist",
                                  "cifar10", "lsun", "image_folder", "disks", "digits"}


def test_epoch_permutation_deterministic():
    a = epoch_permutation(100, 3, 0)
    assert np.array_equal(a, epoch_permutation(100, 3, 0)) and sorted(a) == list(range(100))
    assert not np.array_equal(a, epoch_permutation(100, 3, 1))
    assert not np.array_equal(a, epoch_permutation(100, 4, 0))
    with pytest.raises(ValueError):
        epoch_permutation(10, -1, 0)


def test_sampler_resume_and_ranks():
    s = EpochBatchSampler(103, 10, seed=5)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 11 and len(s) == 11 and sum(len(b) for b in full) == 103
    s.set_epoch(2, start_batch=4)
    assert list(s) == full[4:] and len(s) == 7
    r0 = EpochBatchSampler(103, 10, seed=5, world_size=2, rank=0)
    r1 = EpochBatchSampler(103, 10, seed=5, world_size=2, rank=1)
    i0, i1 = r0.indices(), r1.indices()
    assert len(i0) == len(i1) == 52 and set(i0) | set(i1) == set(range(103))
    assert len(list(EpochBatchSampler(103, 10, drop_last=True))[-1]) == 10
    with pytest.raises(ValueError):
        EpochBatchSampler(10, 0)


def test_loader_same_order_with_workers():
    ds = D.load("digits", size=8, item_format="uint8")
    seen = []
    for workers in (0, 2):
        loader = make_loader(ds, batch_size=64, seed=1, epoch=3, num_workers=workers)
        ys = torch.cat([y for _, y in loader])
        xs = next(iter(loader))[0]
        seen.append((ys, xs))
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])
    order = epoch_permutation(len(ds), 1, 3)
    assert torch.equal(seen[0][0], torch.from_numpy(ds.labels[order]))
    assert seen[0][1].shape == (64, 1, 8, 8) and seen[0][1].dtype == torch.uint8
    # the stock DataLoader path (default collate over __getitems__) gives the same batch
    std = torch.utils.data.DataLoader(ds, batch_size=4)
    x, y = next(iter(std))
    assert x.shape == (4, 1, 8, 8) and y.tolist() == ds.labels[:4].tolist()


def test_cli_info_and_preview(tmp_path, capsys):
    from PIL import Image

    from diffrep.cli import main

    assert main(["data", "info", "dsprites"]) == 0
    out = capsys.readouterr().out
    assert "procedural" in out and "orientation" in out and "size   40" in out
    assert main(["data", "info", "disks", "--json"]) == 0
    assert '"background"' in capsys.readouterr().out
    png = tmp_path / "grid.png"
    assert main(["data", "preview", "dsprites", "--out", str(png), "-n", "4", "--scale", "1"]) == 0
    im = np.asarray(Image.open(png).convert("L"))
    assert im.shape[0] > 64 and im.shape[1] > 2 * 64 and (im == 0).sum() > 1000  # black sprite tiles present
    assert main(["data", "info", "celeba", "--root", str(tmp_path)]) == 2
    assert "celeba" in capsys.readouterr().err


def test_progress_bars_in_preview_and_shapes3d_rendering(tmp_path, monkeypatch, capsys):
    """DIFFREP_PROGRESS=1: ``data preview`` reads its samples under a bar, and a Shapes3D render of
    >= 1000 images shows one; the pixels equal those rendered without bars (chunking changes nothing)."""
    from PIL import Image

    from diffrep.cli import main

    ds = D.load("shapes3d")
    idx = np.arange(0, 1000 * 97, 97)
    monkeypatch.setenv("DIFFREP_PROGRESS", "0")
    quiet = ds.observations(idx)
    assert main(["data", "preview", "disks", "--out", str(tmp_path / "a.png"), "-n", "40"]) == 0
    assert "reading" not in capsys.readouterr().err
    monkeypatch.setenv("DIFFREP_PROGRESS", "1")
    ds = D.load("shapes3d")  # a fresh cache, so that the images are rendered again
    shown = ds.observations(idx)
    assert "rendering Shapes3D" in capsys.readouterr().err
    assert np.array_equal(quiet, shown)
    assert main(["data", "preview", "disks", "--out", str(tmp_path / "b.png"), "-n", "40"]) == 0
    assert "reading disks" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


def test_data_info_takes_reader_options_and_names_an_unknown_one(capsys):
    """``diffrep data info|preview --option KEY=VALUE`` reaches the reader or generator (as --option does
    for the model verbs); an option the dataset does not take is named, with the dataset and source,
    instead of Python's ``__init__() got an unexpected keyword argument``."""
    from diffrep.cli import main
    from diffrep.data import load

    assert main(["data", "info", "disks", "--option", "size=16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["observation_shape"] == [16, 16, 1]
    assert main(["data", "info", "disks", "--option", "bogus=1"]) == 2
    assert "disks (procedural) takes no option 'bogus'" in capsys.readouterr().err
    with pytest.raises(TypeError, match=r"dsprites \(procedural\) takes no option 'colour'"):
        load("dsprites", source="procedural", colour=True)
