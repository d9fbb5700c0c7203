"""A root passed to ``diffrep.data.load`` as its own ``root=`` argument is not echoed back as "(set by root)":
the caller knows where it came from. A flag, a record or DIFFREP_DATA is still named."""
import pytest

from diffrep import data


def test_missing_api_root_names_no_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    gone = tmp_path / "none"
    with pytest.raises(FileNotFoundError) as exc:
        data.load("dsprites", root=gone, source="file")
    msg = str(exc.value)
    assert msg.startswith(f"dataset root {gone} does not exist; dsprites expects "), msg
    assert "set by" not in msg


def test_empty_api_root_names_no_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as exc:
        data.load("dsprites", root=tmp_path, source="file")
    msg = str(exc.value)
    assert "pass root= the folder" in msg and "set by" not in msg, msg


def test_flag_and_environment_still_named(tmp_path, monkeypatch):
    gone = tmp_path / "none"
    with pytest.raises(FileNotFoundError, match=r"does not exist \(set by --root\);"):
        data.load("dsprites", root=gone, source="file", root_flag="--root")
    with pytest.raises(FileNotFoundError, match=r"\(root set by --root\)$"):
        data.load("dsprites", root=tmp_path, source="file", root_flag="--root")
    monkeypatch.setenv("DIFFREP_DATA", str(gone))
    with pytest.raises(FileNotFoundError, match=r"does not exist \(set by the environment variable DIFFREP_DATA\);"):
        data.load("dsprites", source="file")
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"\(root set by DIFFREP_DATA\)$"):
        data.load("dsprites", source="file")
