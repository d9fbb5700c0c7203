"""``diffrep paramrel attributes-encoding``: the attributes-encoding task of issue 7 (SepDiff §4.3,
ParamReL §5.2.1) on the command line, beside reconstruct/traverse/time-varying/interpolate: a PNG
with the images in the first row and one row per subcode drawn with the images' latents."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.cli import main
from helpers import tiny_paramrel

ARGS = ["--dataset", "digits", "--option", "size=8", "--steps", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("attr") / "m"
    tiny_paramrel().save_pretrained(d)
    return d


def test_the_png_holds_the_images_then_one_row_per_subcode(model_dir, tmp_path):
    from diffrep.data import load
    from diffrep.nn import load_pretrained
    from diffrep.viz import save_image

    n, j, seed = 3, 2, 5
    out = tmp_path / "a.png"
    assert main(["paramrel", "attributes-encoding", str(model_dir), *ARGS, "--n", str(n), "--subcodes", str(j),
                 "--seed", str(seed), "--out", str(out)]) == 0
    # the same images (indices drawn from Generator(seed)), subcodes from a Generator(seed) of the model's device
    ds = load("digits", size=8)
    idx = torch.randint(0, len(ds), (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    x = torch.stack([ds[i][0] for i in idx])
    m = load_pretrained(model_dir).eval()
    enc = m.attributes_encoding(x, j, generator=torch.Generator().manual_seed(seed), num_steps=2)
    assert enc.shape == (j, n, 1, 8, 8)
    ref = save_image(torch.cat([x[None], enc]).reshape(-1, 1, 8, 8).float(), tmp_path / "ref.png", nrow=n,
                     value_range=(-1, 1))
    got, want = np.asarray(Image.open(out)), np.asarray(Image.open(ref))
    assert got.shape == want.shape == ((1 + j) * (8 + 2) + 2, n * (8 + 2) + 2, 3)  # 8 px images, padding 2
    np.testing.assert_array_equal(got, want)
    # row 0: the images themselves ([-1, 1] -> 0..255, grey written as RGB)
    first = got[2:10, 2:10, 0].astype(float)
    np.testing.assert_allclose(first, np.round((x[0, 0].numpy() + 1) * 127.5), atol=1)


def test_bad_subcode_counts_get_a_message_not_a_traceback(model_dir, tmp_path, capsys):
    for bad in ("0", "-2"):
        assert main(["paramrel", "attributes-encoding", str(model_dir), *ARGS, "--subcodes", bad,
                     "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert f"--subcodes must be >= 1, got {bad}" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:  # argparse's own message and usage
        main(["paramrel", "attributes-encoding", str(model_dir), *ARGS, "--subcodes", "two"])
    assert exc.value.code == 2 and "argument --subcodes: invalid int value: 'two'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_help_names_the_task_and_its_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["paramrel", "attributes-encoding", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--subcodes SUBCODES" in out and "--n N" in out
    with pytest.raises(SystemExit):
        main(["paramrel", "--help"])
    assert "keep each image's latents, draw new subcodes (SepDiff §4.3, ParamReL §5.2.1)" in \
        " ".join(capsys.readouterr().out.split())


def test_eval_on_a_dataset_without_factors_is_named(model_dir, capsys):
    # digits has labels, no ground-truth factors: paramrel eval said "dataset: missing 'num_factors'
    # (disentanglement_lib ground-truth interface)"; diffrep eval --model and multibeta eval name the dataset
    assert main(["paramrel", "eval", str(model_dir), *ARGS[:4], "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "diffrep paramrel eval: error: --dataset digits: has no ground-truth factors" in err and "Traceback" not in err
