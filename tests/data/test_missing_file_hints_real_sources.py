"""A missing-file hint offers the procedural source only for a dataset that has a generator: LSUN's said
"(or source='procedural' where a generator exists)", and LSUN (as CelebA, MNIST, CIFAR-10, Cars3D, MPI3D) has
none, so following the hint only led to "lsun has no procedural generator"."""

from __future__ import annotations

import pytest

import diffrep.data as D
from diffrep.data.base import missing_file_error


def test_lsun_s_hint_names_only_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        D.load("lsun", root=tmp_path)
    assert str(e.value) == (f"lsun: expected file(s) <category>_<split>_lmdb/data.mdb under {str(tmp_path)!r} but found "
                            "none there; pass root= the folder holding them")


def test_the_hint_offers_a_generator_only_when_told_and_names_a_bad_flag():
    assert str(missing_file_error("dsprites", ["a.npz"], "/d", generated=True)).endswith(
        "pass root= the folder holding them (or source='procedural' where a generator exists)")
    assert str(missing_file_error("celeba", ["a.txt"], "/d")).endswith("pass root= the folder holding them")
    with pytest.raises(TypeError, match="generated must be True or False, got 'yes'"):
        missing_file_error("celeba", ["a.txt"], "/d", generated="yes")


@pytest.mark.parametrize("name", [n for n, e in D.REGISTRY.items() if e.from_file is not None])
def test_every_reader_s_hint_offers_a_generator_exactly_when_there_is_one(name, tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    entry = D.REGISTRY[name]
    if entry.find(tmp_path) is not None:  # image_folder: any folder is its root; nothing is missing
        pytest.skip(f"{name} finds its files in any folder")
    with pytest.raises(FileNotFoundError) as e:
        D.load(name, root=tmp_path, source="file", root_flag="--root", source_flag="--source")
    text = str(e.value)
    assert text.startswith(f"{name}: expected file(s) ") and "pass --root the folder holding them" in text
    if entry.procedural is not None:
        assert "(or --source procedural where a generator exists)" in text
    else:
        assert "procedural" not in text and "generator" not in text
    # the hint is one a user can follow: the procedural source it offers loads
    if entry.procedural is not None:
        assert D.load(name, source="procedural") is not None
    else:
        with pytest.raises(ValueError, match=f"{name} has no procedural generator"):
            D.load(name, source="procedural")
