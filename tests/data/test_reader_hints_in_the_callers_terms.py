"""A reader's own missing-file error (a folder that ``load`` found but that lacks some of the files: CelebA's
images or partition list, a car that Cars3D's list.txt names, MNIST's or CIFAR-10's other split) says how to
give a root in its caller's terms: a reader constructed from Python (or ``load`` with its defaults) names the
argument ``root=``; ``diffrep data``, ``eval`` and ``encode`` name ``--root``, as the model verbs do. None of
these datasets has a generator, so no hint offers a procedural source (tests/data/test_roots.py words one for
dSprites, which has)."""

import pickle

import pytest

import diffrep.data as D
from diffrep.cli import main
from diffrep.data.base import MissingFilesError
from diffrep.data.cars3d import Cars3D
from diffrep.data.celeba import CelebA
from diffrep.data.cifar10 import CIFAR10
from diffrep.data.mnist import MNIST

from reader_fixtures import write_cifar10, write_mnist

API = "pass root= the folder holding them"
CLI = VERB = "pass --root the folder holding them"


def _celeba(tmp_path):  # the attribute list that load() finds the folder by, and neither the images nor the split
    (tmp_path / "list_attr_celeba.txt").write_text("0\n")
    return ("celeba", None, f"celeba: expected file(s) img_align_celeba, list_eval_partition.txt under "
                            f"'{tmp_path}' but found none there; ")


def _cars3d(tmp_path):  # list.txt names three cars, none present
    (tmp_path / "list.txt").write_text("car_a\ncar_b\ncar_c\n")
    return "cars3d", None, f"cars3d: expected file(s) car_a.mat (+2 more) under '{tmp_path}' but found none there; "


def _cars3d_one(tmp_path):  # one car missing: no "(+0 more)"
    (tmp_path / "list.txt").write_text("car_a\n")
    return "cars3d", None, f"cars3d: expected file(s) car_a.mat under '{tmp_path}' but found none there; "


def _mnist(tmp_path):  # the train files only: the test split is missing
    write_mnist(tmp_path)
    for f in tmp_path.glob("t10k-*"):
        f.unlink()
    return ("mnist", "test", f"mnist: expected file(s) t10k-images-idx3-ubyte[.gz] under '{tmp_path} (also "
                             f"MNIST/raw/)' but found none there; ")


def _cifar10(tmp_path):  # the train batches only
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    return ("cifar10", "test", f"cifar10: expected file(s) test_batch under '{tmp_path / 'cifar-10-batches-py'}' "
                               f"but found none there; ")


READERS = {"celeba": (_celeba, lambda p, s: CelebA(p)), "cars3d": (_cars3d, lambda p, s: Cars3D(p)),
           "cars3d-one": (_cars3d_one, lambda p, s: Cars3D(p)), "mnist": (_mnist, lambda p, s: MNIST(p, split=s)),
           "cifar10": (_cifar10, lambda p, s: CIFAR10(p, split=s))}


@pytest.mark.parametrize("reader", list(READERS))
def test_the_python_api_names_the_arguments(reader, tmp_path):
    write, construct = READERS[reader]
    name, split, lead = write(tmp_path)
    for call in (lambda: construct(tmp_path, split), lambda: D.load(name, root=tmp_path, split=split)):
        with pytest.raises(FileNotFoundError) as e:
            call()
        assert str(e.value) == lead + API
        assert isinstance(e.value, MissingFilesError)


@pytest.mark.parametrize("reader", list(READERS))
def test_a_command_line_names_its_flags(reader, tmp_path, capsys):
    write, _ = READERS[reader]
    name, split, lead = write(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        D.load(name, root=tmp_path, split=split, root_flag="--root", source_flag="--source")
    assert str(e.value) == lead + CLI
    with pytest.raises(FileNotFoundError) as e:  # the model verbs: the source is one of their --option settings
        D.load(name, root=tmp_path, split=split, root_flag="--root", source_flag="--option source=")
    assert str(e.value) == lead + VERB
    argv = ["data", "info", name, "--root", str(tmp_path)] + (["--split", split] if split else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"diffrep data info: error: {lead}{CLI}" and "Traceback" not in err


def test_the_error_keeps_its_fields_through_pickling(tmp_path):
    """A DataLoader worker's error crosses a process boundary pickled: the fields load() words it from survive."""
    _celeba(tmp_path)
    with pytest.raises(MissingFilesError) as e:
        CelebA(tmp_path)
    back = pickle.loads(pickle.dumps(e.value))
    assert (type(back), str(back), back.dataset, back.expected, back.root) == (
        MissingFilesError, str(e.value), "celeba", ("img_align_celeba", "list_eval_partition.txt"), tmp_path)
