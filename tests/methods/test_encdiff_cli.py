"""``diffrep encdiff``: help for every verb, clear errors (no traceback), and the verbs on a tiny saved
model over the CPU recipe's data (values of ``encode`` against the model's own methods)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffrep.cli import main
from diffrep.cli.encdiff import N_HELP, VERBS


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny CPU-recipe model (3 units, 4-d tokens) with anchors, saved; and the rendered dataset,
    which the CLI then reuses instead of rendering it per call (module-scoped monkeypatch)."""
    from diffrep.recipes.encdiff import Shapes3DSubgrid, cpu_model
    from diffrep.methods.encdiff import EncDiff

    torch.manual_seed(0)
    cfg = cpu_model(num_units=3, token_dim=4)
    cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "sample_steps": 2})
    m = EncDiff(cfg)
    ds = Shapes3DSubgrid(pool=4)
    m.train()
    m.loss(ds[list(range(16))][0], step=0)
    m.refresh_anchors(ds.images01[:600] * 2 - 1, batch_size=600)
    d = tmp_path_factory.mktemp("encdiff") / "model"
    m.eval().save_pretrained(d)
    mp = pytest.MonkeyPatch()
    mp.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", lambda pool=4: ds)
    yield d, m, ds
    mp.undo()


@pytest.mark.parametrize("verb", ("recipes", "train") + VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main(["encdiff", verb, "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "usage" in text
    if verb in VERBS:   # --n had no help: what it counts differs per verb
        flat = " ".join(text.split())
        assert f"--n N {' '.join(N_HELP[verb].split())} (default: " in flat, flat
        # every flag of a verb says what it is (--units, --factor and --eval had no help; --seed and --device
        # speak for themselves)
        import argparse

        from diffrep.cli import build_parser

        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        verbs = next(a for a in sub.choices["encdiff"]._actions if isinstance(a, argparse._SubParsersAction))
        bare = [a.option_strings[0] for a in verbs.choices[verb]._actions
                if a.option_strings and a.help is None and a.dest not in ("seed", "device")]
        assert not bare, (verb, bare)


def test_the_command_list_names_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("encdiff EncDiff + DyGA + Skip Dropout:")
    line = text[start:text.index("options:", start)]      # the last command of the list
    for verb in ("train",) + VERBS:     # eval was missing from it
        assert verb in line.replace(",", " ").split(), (verb, line)


def test_errors_are_messages_not_tracebacks(tmp_path, capsys, saved):
    assert main(["encdiff", "encode", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main(["encdiff", "encode", str(saved[0] / "config.json")]) == 2
    assert f"config.json is a file; give the model folder that holds it ({saved[0]})" in capsys.readouterr().err
    assert main(["encdiff", "sample", str(saved[0]), "--n", "0"]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err
    assert main(["encdiff", "train", "paramrel/digits"]) == 2
    assert "encdiff/ recipe" in capsys.readouterr().err
    assert main(["encdiff", "interchange", str(saved[0]), "--units", "7", "--out", str(tmp_path / "a.png")]) == 2
    assert "--units must be unit indices in 0..2, got [7]" in capsys.readouterr().err  # was "units[0]: ..."
    # a mistyped --option was blamed on "the run's data settings"
    assert main(["encdiff", "encode", str(saved[0]), "--option", "sizee=8", "--out", str(tmp_path / "c.npz")]) == 2
    assert ("shapes3d_subgrid: unknown options ['sizee'] (the run's data settings with any --option over them); the "
            "only option is size (one of [64, 32, 16, 8])") in capsys.readouterr().err


def test_flags_a_verb_would_ignore_or_misread_are_refused(tmp_path, capsys, saved):
    """--steps only on the verbs that run DDIM (encode, anchors and eval took it and ignored it); --pool only
    among the sub-grid's pooling factors (--pool 0 skipped the pooling: 64 px images for a 16 px model); a
    --factor the dataset does not have."""
    from diffrep.cli.encdiff import POOLS, SAMPLING_VERBS
    from diffrep.recipes import encdiff as recipes

    assert POOLS == recipes.POOLS and set(SAMPLING_VERBS) < set(VERBS)
    for verb in set(VERBS) - set(SAMPLING_VERBS):
        with pytest.raises(SystemExit) as e:
            main(["encdiff", verb, str(saved[0]), "--steps", "3"])
        assert e.value.code == 2 and "unrecognized arguments: --steps 3" in capsys.readouterr().err
    for pool in ("0", "3"):
        with pytest.raises(SystemExit) as e:
            main(["encdiff", "encode", str(saved[0]), "--pool", pool])
        assert e.value.code == 2 and f"argument --pool: invalid choice: {pool}" in capsys.readouterr().err
    for factor in ("6", "-1"):   # the sub-grid has 6 factors
        assert main(["encdiff", "anchors", str(saved[0]), "--factor", factor, "--out", str(tmp_path / "a.png")]) == 2
        assert f"--factor must be in [0, 6), got {factor}" in capsys.readouterr().err
    for pool in (0, -1, 3, True, 4.0):
        with pytest.raises(ValueError, match=r"pool must be one of 1, 2, 4, 8 \(divisors of the 64 px renders\)"):
            type(saved[2])(pool)     # the class (the fixture patched the module's name with a lambda)
    assert not list(tmp_path.iterdir())


def test_anchors_says_why_a_model_has_none(tmp_path, capsys, saved):
    from diffrep.methods.encdiff import EncDiff
    from diffrep.recipes.encdiff import cpu_model

    for conditioning, message in (("fsq", "this model has no DyGA anchors: its conditioning is 'fsq', not 'dyga'"),
                                  ("dyga", "this model's DyGA anchors were never fitted: its training ended before "
                                           "the first refresh")):
        d = tmp_path / conditioning
        EncDiff(cpu_model(num_units=3, token_dim=4, conditioning=conditioning)).save_pretrained(d)
        assert main(["encdiff", "anchors", str(d), "--out", str(tmp_path / "a.png")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


def test_the_verbs_read_the_dataset_of_the_models_run(tmp_path, capsys, saved):
    """Without --dataset a verb reads the dataset of the model's run.json (a paper recipe's 64 px model was shown
    the 16 px sub-grid and refused), an old record's pool 4 on it read as pool 1 with the note of every model
    verb; --pool with another dataset is refused (it was ignored)."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved[0], run / "final")
    (run / "run.json").write_text(json.dumps({"recipe": "encdiff/shapes3d", "data": {
        "dataset": "dsprites", "options": {}, "pool": 4, "root": None}}))
    assert main(["encdiff", "encode", str(run / "final"), "--out", str(tmp_path / "c.npz")]) == 2
    err = capsys.readouterr().err
    assert "the dataset's images are (1, 64, 64), the model reads (3, 16, 16)" in err
    assert "records pool 4 for dsprites, but recipe encdiff/shapes3d pools only shapes3d_subgrid" in err
    assert main(["encdiff", "encode", str(saved[0]), "--dataset", "dsprites", "--pool", "4"]) == 2
    assert "--pool applies to the shapes3d_subgrid only; dsprites is read at its own size" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


def test_sample_draws_its_tokens_from_at_least_64_images(tmp_path, saved):
    """``sample --n 2`` conditions on tokens drawn with replacement from the raw tokens of 64 shuffled images
    (it drew them from its own 2 images: the pool was cut to n before it was taken)."""
    from PIL import Image

    from diffrep.viz.grids import save_image

    from diffrep.methods.encdiff import EncDiff

    _, _, ds = saved
    m = EncDiff.from_pretrained(saved[0]).eval()
    with torch.no_grad():   # the fixture's U-Net is at its zero-initialised output: images ignore the tokens
        g = torch.Generator().manual_seed(1)
        for p in m.unet.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    d = tmp_path / "model"
    m.save_pretrained(d)
    out = tmp_path / "s.png"
    assert main(["encdiff", "sample", str(d), "--n", "2", "--seed", "5", "--out", str(out)]) == 0

    def png(pool):
        g = torch.Generator().manual_seed(5)
        perm = torch.randperm(len(ds), generator=g)
        bank = m.tokens(ds[perm[:pool].numpy()][0], aligned=False)
        # the 16 px images enlarged 8 times (128 px per image, as 'diffrep sample')
        save_image(m.sample(2, generator=g, tokens=bank), tmp_path / "want.png", value_range=(-1, 1), nrow=2, scale=8)
        return np.asarray(Image.open(tmp_path / "want.png"))

    got = np.asarray(Image.open(out))
    np.testing.assert_array_equal(got, png(64))
    assert not np.array_equal(got, png(2))     # what the pool of n images gave


def test_an_n_above_the_datasets_size_is_said(tmp_path, capsys, saved):
    out = tmp_path / "codes.npz"
    assert main(["encdiff", "encode", str(saved[0]), "--n", "6000", "--out", str(out)]) == 0
    assert "diffrep encdiff encode: --n 6000: the dataset has 5120 images; using 5120" in capsys.readouterr().err
    assert sorted(np.load(out)["indices"].tolist()) == list(range(5120))


def test_encode_writes_the_models_codes(tmp_path, saved):
    d, m, ds = saved
    out = tmp_path / "codes.npz"
    assert main(["encdiff", "encode", str(d), "--n", "40", "--out", str(out), "--seed", "3"]) == 0
    z = np.load(out)
    idx = z["indices"]
    x = ds[idx][0]
    np.testing.assert_allclose(z["scalars"], m.encode(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z["tokens"], m.tokens(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z["pca_codes"], m.pca_codes(x).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(z["factors"], ds.factors[idx])
    # the file is one 'diffrep eval --codes' reads (it was refused: "has no array 'codes'"), its codes the PCA codes,
    # scored as the same arrays given directly
    np.testing.assert_array_equal(z["codes"], z["pca_codes"])
    from diffrep.metrics.suite import compute

    assert main(["eval", "--codes", str(out), "--metrics", "mig", "--out", str(tmp_path / "m.json")]) == 0
    got = json.loads((tmp_path / "m.json").read_text())
    want = compute({"codes": z["pca_codes"], "factors": z["factors"]}, ["mig"])
    assert got["scores"]["mig"] == pytest.approx(float(want["mig"]), abs=0) and got["scores"]["mig"] > 0


@pytest.mark.slow
def test_image_verbs_write_pngs(tmp_path, saved):
    d = str(saved[0])
    for verb in ("sample", "interchange", "attention", "anchors"):
        out = tmp_path / f"{verb}.png"
        assert main(["encdiff", verb, d, "--n", "4" if verb != "anchors" else "200", "--out", str(out)]) == 0
        assert out.stat().st_size > 100


@pytest.mark.slow
def test_eval_writes_the_metric_suite_on_pca_codes(tmp_path, saved):
    import json

    out = tmp_path / "m.json"
    assert main(["encdiff", "eval", str(saved[0]), "--n", "300", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    for k in ("mig", "dci_disentanglement", "factor_vae_eval", "sap", "modularity", "infom"):
        assert 0 <= rec["scores"][k] <= 1
    assert rec["codes"] == "aligned" and rec["pca_fit_points"] == 300


def test_eval_downstream_prints_the_table5_numbers(capsys):
    from diffrep.cli.encdiff import _print_downstream

    _print_downstream({"100:mean_test_accuracy": 0.5, "100:min_test_accuracy": 0.25, "100:test_accuracy_factor_0": 0.9,
                       "1000:mean_test_accuracy": 0.625, "efficiency_100": 0.8})
    assert capsys.readouterr().out.split("\n") == [f"{'gbt_test_acc@100':22s} 0.5000", f"{'gbt_test_acc@1000':22s} 0.6250",
                                                   f"{'efficiency_100':22s} 0.8000", ""]


def test_representation_fn_is_the_pca_projection_of_the_tokens(saved):
    _, m, ds = saved
    fit = ds.sample_observations_from_factors(ds.sample_factors(100, np.random.RandomState(0)))
    fn = m.representation_fn(fit)
    obs = ds.sample_observations_from_factors(ds.sample_factors(7, np.random.RandomState(1)))
    tok = lambda o: m.tokens(torch.from_numpy(o).permute(0, 3, 1, 2) * 2 - 1).double()  # noqa: E731
    from diffrep.metrics.pca import pca1_units
    np.testing.assert_allclose(fn(obs), pca1_units(tok(obs), fit_on=tok(fit)).numpy(), rtol=1e-5, atol=1e-7)


def test_eval_on_an_attribute_dataset_is_tad_of_the_pca_codes(tmp_path, saved):
    """Datasets with binary attributes and no factors (CelebA) get TAD (DisDiff variant, spec 6.2)."""
    import json
    from types import SimpleNamespace

    from diffrep.cli.encdiff import _evaluate_tad
    from diffrep.metrics import tad
    from diffrep.metrics.pca import pca1_units

    _, m, ds = saved

    class Attr:
        attributes = np.stack([ds.factors[:, 4] == 0, ds.factors[:, 3] >= 2, ds.factors[:, 0] % 2 == 1], 1).astype(np.int64)

        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return ds[i][0], torch.as_tensor(self.attributes[i])

    idx = list(range(0, 5120, 10))
    out = tmp_path / "tad.json"
    for raw in (False, True):    # --raw: the raw tokens c (it was ignored: TAD read the aligned ones)
        _evaluate_tad(m, Attr(), idx, SimpleNamespace(raw=raw), out)
        rec = json.loads(out.read_text())
        want = tad(pca1_units(m.tokens(ds[idx][0], aligned=not raw)), torch.as_tensor(Attr.attributes[idx]),
                   variant="disdiff")
        assert rec["scores"]["tad"] == pytest.approx(want["tad"], abs=1e-9) and rec["images"] == len(idx)
        assert rec["codes"] == ("raw" if raw else "aligned")


# -- --device cuda (the figures read the model's tokens back to numpy: the anchors figure called .numpy() on CUDA
# tensors); the GPU check runs these ("cuda" in their names). The codes written on the GPU equal the CPU model's.
_NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@_NEEDS_GPU
def test_the_verbs_run_on_cuda(tmp_path, saved):
    d = str(saved[0])
    for verb in ("sample", "interchange", "attention", "anchors"):
        out = tmp_path / f"{verb}.png"
        assert main(["encdiff", verb, d, "--device", "cuda", "--n", "4" if verb != "anchors" else "200",
                     "--out", str(out)]) == 0, verb
        assert out.stat().st_size > 100


@_NEEDS_GPU
def test_codes_written_on_cuda_are_the_cpu_models(tmp_path, saved):
    d, m, ds = saved
    out = tmp_path / "codes.npz"
    assert main(["encdiff", "encode", str(d), "--device", "cuda", "--n", "40", "--out", str(out), "--seed", "3"]) == 0
    z = np.load(out)
    x = ds[z["indices"]][0]
    np.testing.assert_allclose(z["scalars"], m.encode(x).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z["tokens"], m.tokens(x).numpy(), rtol=1e-4, atol=1e-5)


def test_anchors_figure_keeps_the_process_backend(tmp_path, saved):
    """The anchors figure draws on a Figure of its own: a notebook's backend (here svg) is not switched to Agg
    for the rest of the process, as matplotlib.use('Agg') in the verb did."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        out = tmp_path / "anchors.png"
        assert main(["encdiff", "anchors", str(saved[0]), "--n", "200", "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)


def test_sami_plots_keep_the_process_backend(tmp_path):
    import matplotlib

    from diffrep.cli.sami import _plot

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        path = _plot(lambda ax: ax.plot([0, 1], [1, 0]), tmp_path / "curve.png")
        assert path == str(tmp_path / "curve.png")
        assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
