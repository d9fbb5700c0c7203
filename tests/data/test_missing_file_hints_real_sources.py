"""A missing-file hint offers the procedural source only for a dataset that has a generator: LSUN's said
"(or source='procedural' where a generator exists)", and LSUN (as CelebA, MNIST, CIFAR-10, Cars3D, MPI3D) has
none, so following the hint only led to "lsun has no procedural generator"."""

from __future__ import annotations

import pytest

import diffrep.data as D
from diffrep.data.base import missing_file_error


def test_lsun_s_hint_names_only_the_root():
    err = missing_file_error("lsun", ["<category>_<split>_lmdb/data.mdb"], "/data")
    assert str(err) == ("lsun: expected file(s) <category>_<split>_lmdb/data.mdb under '/data' but found none there; "
                        "pass root= the folder holding them")


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
