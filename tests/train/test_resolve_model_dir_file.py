"""``diffrep.cli._common.resolve_model_dir`` given a file inside a model folder (``final/config.json``,
``model.safetensors``): every model verb names the folder to give instead, one message for all of them."""

import pytest

from diffrep.cli import main
from diffrep.cli._common import resolve_model_dir


def test_a_file_names_the_folder_holding_it(tmp_path, capsys):
    folder = tmp_path / "final"
    folder.mkdir()
    cfg = folder / "config.json"
    cfg.write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"config\.json is a file; give the model folder that holds it"):
        resolve_model_dir(cfg)
    assert resolve_model_dir(folder) == folder
    assert main(["sample", str(cfg)]) == 2  # a verb with no check of its own
    err = capsys.readouterr().err
    assert f"is a file; give the model folder that holds it ({folder})" in err and "Traceback" not in err
