"""diffrep._files.write_text_atomic: a failed write leaves the earlier file whole and no temporary behind."""
import os

import pytest

from diffrep._files import write_text_atomic


def test_writes_and_replaces(tmp_path):
    p = tmp_path / "run.json"
    assert write_text_atomic(p, "one\n") == p and p.read_text() == "one\n"
    write_text_atomic(str(p), "two")
    assert p.read_text() == "two" and sorted(os.listdir(tmp_path)) == ["run.json"]


def test_a_failed_write_keeps_the_earlier_file(tmp_path, monkeypatch):
    p = tmp_path / "config.yaml"
    p.write_text("a: 1\nb: 2\n")

    def cut(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(p, "a: 3\n")
    assert p.read_text() == "a: 1\nb: 2\n" and sorted(os.listdir(tmp_path)) == ["config.yaml"]


@pytest.mark.parametrize("path, text, msg", [(3, "x", "path must be a str or os.PathLike, got int"),
                                             ("f", b"x", "text must be a str, got bytes")])
def test_bad_arguments_are_named(tmp_path, path, text, msg):
    with pytest.raises(TypeError, match=msg):
        write_text_atomic(path, text)
