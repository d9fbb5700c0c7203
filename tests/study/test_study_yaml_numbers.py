"""Numbers in study files as researchers write them. PyYAML's safe_load follows YAML 1.1, which reads
``1e-3`` (no dot) as the string "1e-3": the grid point then named its folder ``lr=1e-3`` while the cell
trained with 0.001, and ``[1e-3, 0.001]`` trained one config twice in two folders. A study file is
now read with YAML 1.2 floats (as config presets are), and folder names show the value the cell's
config holds, so every spelling of a value gives one folder."""

import pytest

from diffrep.study import StudyError, load_study
from study_fake import RECIPE


def _write(tmp_path, grid: str, name="s.yaml", extra=""):
    p = tmp_path / name
    p.write_text(f"""study: nums
seeds: [0]
steps: 3
{extra}methods:
  ae:
    recipe: {RECIPE}
    grid: {grid}
eval:
  metrics: []
""", encoding="utf-8")
    return p


def test_exponent_floats_without_a_dot_are_numbers_and_name_folders_by_value(tmp_path):
    st = load_study(_write(tmp_path, "{train.lr: [1e-3, 3E-4, 2.5e+1], model.weight: [5e-1]}",
                           extra="overrides: {train.weight_decay: 1e-5}\n"))
    assert [c.config.train.lr for c in st.cells] == [0.001, 0.0003, 25.0]
    assert all(c.config.train.weight_decay == 1e-05 and c.config.model.weight == 0.5 for c in st.cells)
    assert [c.params for c in st.cells] == [(("train.lr", 0.001), ("model.weight", 0.5)),
                                            (("train.lr", 0.0003), ("model.weight", 0.5)),
                                            (("train.lr", 25.0), ("model.weight", 0.5))]
    assert [c.folder for c in st.cells] == ["ae/dsprites/lr=0.001_weight=0.5/seed0",
                                            "ae/dsprites/lr=0.0003_weight=0.5/seed0",
                                            "ae/dsprites/lr=25_weight=0.5/seed0"]
    assert st.spec["methods"][0]["grid"] == {"train.lr": [0.001, 0.0003, 25.0], "model.weight": [0.5]}


def test_every_spelling_of_a_value_gives_the_same_cells_and_study_hash(tmp_path):
    spellings = ["[1e-3, 2]", "[0.001, 2.0]", "[1.0e-3, 2]", "[10e-4, 2.]", "['1e-3', '2']"]
    studies = [load_study(_write(tmp_path, f"{{model.weight: {s}}}", name=f"s{i}.yaml"))
               for i, s in enumerate(spellings)]
    first = studies[0]
    assert [c.folder for c in first.cells] == ["ae/dsprites/weight=0.001/seed0", "ae/dsprites/weight=2/seed0"]
    for st in studies[1:]:
        assert [c.folder for c in st.cells] == [c.folder for c in first.cells]
        assert [c.hash for c in st.cells] == [c.hash for c in first.cells]
        assert [c.params for c in st.cells] == [(("model.weight", 0.001),), (("model.weight", 2.0),)]
        assert st.hash == first.hash


def test_two_spellings_of_one_value_in_a_grid_are_a_repeat_not_two_runs(tmp_path):
    with pytest.raises(StudyError, match=r"grid.train.lr: \[0.001, 0.0003, 0.001\] repeats a value"):
        load_study(_write(tmp_path, "{train.lr: [1e-3, 3e-4, 0.001]}"))
    # a quoted spelling is a string until the config types it: the cells then share one folder
    with pytest.raises(StudyError, match="two cells share the folder ae/dsprites/lr=0.001/seed0"):
        load_study(_write(tmp_path, "{train.lr: ['1e-3', 0.001]}"))


def test_a_key_given_twice_or_a_file_that_is_not_a_mapping_is_an_error_naming_it(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text(f"study: d\nseeds: [0]\nseeds: [1]\nmethods: {{ae: {RECIPE}}}\n", encoding="utf-8")
    with pytest.raises(StudyError, match=r"dup.yaml: not valid YAML \(line 3, column 1\): duplicate key 'seeds' "
                                         r"\(first on line 2\)"):
        load_study(dup)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(StudyError, match="list.yaml: a study file is a YAML mapping"):
        load_study(lst)
