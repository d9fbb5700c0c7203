"""``diffrep diffae``, ``diffrep infodiffusion`` and ``diffrep disdiff``: help for every verb, messages (exit 2,
no traceback) for wrong folders and flags, and the grids' rows against the models' own encode / inversion /
decode calls made here (tiny untrained CPU-recipe models, a small in-memory dataset in [-1, 1])."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffrep.cli import main

from helpers import untrained_on_purpose

FAMILIES = {"diffae": ("reconstruct", "swap", "traverse", "interpolate", "manipulate"),
            "infodiffusion": ("reconstruct", "swap", "traverse"), "disdiff": ("reconstruct", "swap", "traverse")}


class _Images:
    """40 random 16 px RGB images in [-1, 1] with one factor (index mod 2): what the verbs read instead of the 5,120
    renders."""

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(40, 3, 16, 16, generator=g) * 2 - 1
        self.f = (np.arange(40) % 2)[:, None]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[torch.as_tensor(i)], self.f[i]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from diffrep.methods.diffae import DiffAE
    from diffrep.methods.disdiff import DisDiff
    from diffrep.methods.infodiffusion import InfoDiffusion
    from diffrep.recipes import diffae, disdiff, infodiffusion
    from diffrep.recipes.runinfo import RECIPE_DATASETS

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("dae_cli")
    pre = dataclasses.replace(disdiff.cpu_model(num_units=3, unit_dim=2), sample_steps=2, stage="pretrain")
    models = {"diffae": DiffAE(dataclasses.replace(diffae.cpu_model(latent_dim=4), sample_steps=2)),
              "disdiff-pretrain": untrained_on_purpose(DisDiff(pre)),
              "infodiffusion": InfoDiffusion(dataclasses.replace(infodiffusion.cpu_model(latent_dim=4), sample_steps=2)),
              "disdiff": untrained_on_purpose(DisDiff(dataclasses.replace(disdiff.cpu_model(num_units=3, unit_dim=2), sample_steps=2)))}
    ds = _Images()
    stats = DiffAE(models["diffae"].config)   # a stage-2 folder: the z_sem statistics fitted
    stats.load_state_dict(models["diffae"].state_dict())
    with torch.no_grad():
        stats.fit_latent_stats(stats.encode(ds.x))
    models["diffae-latent"] = stats
    out = {}
    for name, m in models.items():
        m.eval().save_pretrained(root / name)
        out[name] = (root / name, m)
    mp = pytest.MonkeyPatch()   # no run.json: the verbs fall back to the sub-grid, here the small dataset
    mp.setitem(RECIPE_DATASETS, "shapes3d_subgrid", lambda pool: ds)
    yield out, ds
    mp.undo()


def _png(path):
    from PIL import Image

    return np.asarray(Image.open(path)).astype(np.int16)


def _expected(rows, ncol, path):
    from diffrep.viz.grids import save_image

    save_image(torch.cat([r.clamp(-1, 1) for r in rows]), path, value_range=(-1, 1), nrow=ncol, scale=2)
    return _png(path)


def _idx(n, seed=0, size=40):
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n].tolist()


@pytest.mark.parametrize("command,verb", [(c, v) for c, vs in FAMILIES.items() for v in ("recipes", "train") + vs])
def test_every_verb_has_help(command, verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, verb, "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: diffrep {command} {verb}")


def test_the_command_list_names_the_families(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in FAMILIES:
        assert f"    {command}" in text


@torch.no_grad()
def test_swap_rows_are_the_targets_codes_with_one_source_dimension(folders, tmp_path, capsys):
    """Rows: sources, targets, then per dimension d the target's code with d from the source, decoded from the
    target's inverted x_T (computed here from encode, encode_stochastic and decode)."""
    out, ds = folders
    for name in ("diffae", "infodiffusion"):
        folder, m = out[name]
        assert main([name, "swap", str(folder), "--n", "4", "--dims", "0", "3", "--steps", "2",
                     "--out", str(tmp_path / f"{name}.png")]) == 0
        x = ds.x[_idx(4)]
        a, b = x[:2], x[2:]
        za, zb = m.encode(a), m.encode(b)
        xT = m.encode_stochastic(b, zb, num_steps=2)
        rows = [a, b]
        for d in (0, 3):
            z = zb.clone()
            z[:, d] = za[:, d]
            rows.append(m.decode(z, xT, num_steps=2))
        assert np.abs(_png(tmp_path / f"{name}.png") - _expected(rows, 2, tmp_path / "e.png")).max() <= 1
    # an odd --n: the pairs it holds (5 images: 2 sources, 2 targets, 2 columns of 16 px + padding, scaled by 2)
    assert main(["infodiffusion", "swap", str(out["infodiffusion"][0]), "--n", "5", "--dims", "1", "--steps", "2",
                 "--out", str(tmp_path / "odd.png")]) == 0
    assert _png(tmp_path / "odd.png").shape[:2] == (2 * (2 + 3 * 18), 2 * (2 + 2 * 18))
    folder, m = out["disdiff"]   # default: every unit, a row each
    assert main(["disdiff", "swap", str(folder), "--n", "4", "--steps", "2", "--out", str(tmp_path / "d.png")]) == 0
    x = ds.x[_idx(4)]
    a, b = x[:2], x[2:]
    ua, ub = m.encode_units(a), m.encode_units(b)
    xT = m.encode_stochastic(b, ub, num_steps=2)
    rows = [a, b]
    for c in range(3):
        u = ub.clone()
        u[:, c] = ua[:, c]
        rows.append(m.decode(u, xT, num_steps=2))
    assert np.abs(_png(tmp_path / "d.png") - _expected(rows, 2, tmp_path / "e.png")).max() <= 1


@torch.no_grad()
def test_reconstruct_rows_decode_the_code_from_the_inverted_or_a_fresh_x_T(folders, tmp_path):
    out, ds = folders
    folder, m = out["infodiffusion"]
    x = ds.x[_idx(3, seed=5)]
    assert main(["infodiffusion", "reconstruct", str(folder), "--n", "3", "--seed", "5", "--steps", "2",
                 "--out", str(tmp_path / "r.png")]) == 0
    z = m.encode(x)
    rows = [x, m.decode(z, m.encode_stochastic(x, z, num_steps=2), num_steps=2)]
    assert np.abs(_png(tmp_path / "r.png") - _expected(rows, 3, tmp_path / "e.png")).max() <= 1
    folder, m = out["disdiff"]
    assert main(["disdiff", "reconstruct", str(folder), "--n", "3", "--seed", "5", "--steps", "2", "--fresh-noise",
                 "--out", str(tmp_path / "f.png")]) == 0
    xT = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))   # the DDIM start the seed draws
    rows = [x, m.decode(m.encode_units(x), xT, num_steps=2)]
    assert np.abs(_png(tmp_path / "f.png") - _expected(rows, 3, tmp_path / "e.png")).max() <= 1


@torch.no_grad()
def test_traverse_and_interpolate_rows(folders, tmp_path, capsys):
    out, ds = folders
    folder, m = out["diffae-latent"]
    x = ds.x[_idx(2)]
    assert main(["diffae", "traverse", str(folder), "--n", "2", "--dim", "1", "--values", "-1", "2", "--steps", "2",
                 "--out", str(tmp_path / "t.png")]) == 0
    z = m.encode(x)
    xT = m.encode_stochastic(x, z, num_steps=2)
    rows = [x]
    for v in (-1.0, 2.0):   # the standardised dimension set to v
        zn = (z - m.z_mean) / m.z_std
        zn[:, 1] = v
        rows.append(m.decode(zn * m.z_std + m.z_mean, xT, num_steps=2))
    assert np.abs(_png(tmp_path / "t.png") - _expected(rows, 2, tmp_path / "e.png")).max() <= 1
    assert main(["diffae", "interpolate", str(folder), "--n", "4", "--alphas", "0", "1", "--steps", "2",
                 "--out", str(tmp_path / "i.png")]) == 0
    x = ds.x[_idx(4)]
    a, b = x[:2], x[2:]
    ends = [m.decode(m.encode(v), m.encode_stochastic(v, num_steps=2), num_steps=2) for v in (a, b)]  # alpha 0 and 1
    assert np.abs(_png(tmp_path / "i.png") - _expected([a, *ends, b], 2, tmp_path / "e.png")).max() <= 1
    folder, m = out["disdiff"]   # no PCA in the folder: fitted on --pca-images images first, said on stderr
    assert main(["disdiff", "traverse", str(folder), "--n", "2", "--dim", "2", "--values", "0.5", "--pca-images", "10",
                 "--steps", "2", "--out", str(tmp_path / "u.png")]) == 0
    assert "fitting the per-unit PCA on 10 dataset images" in capsys.readouterr().err
    fitted = type(m)(m.config)
    fitted.load_state_dict(m.state_dict())
    fitted.fit_code_pca(ds.x[_idx(10)])
    rows = [ds.x[_idx(2)], *fitted.traverse(ds.x[_idx(2)], 2, [0.5], num_steps=2)]
    assert np.abs(_png(tmp_path / "u.png") - _expected(rows, 2, tmp_path / "e.png")).max() <= 1


@torch.no_grad()
def test_manipulate_rows_move_along_the_fitted_attribute_direction(folders, tmp_path):
    """The direction is DiffAE.fit_attribute on the codes of --fit-images images labelled factor == value; each row
    is manipulate by one of --scales (DiffAE Sec. 5.2)."""
    out, ds = folders
    folder, m = out["diffae-latent"]
    assert main(["diffae", "manipulate", str(folder), "--factor", "0", "--value", "1", "--fit-images", "12", "--n", "1",
                 "--scales", "3", "--steps", "1", "--out", str(tmp_path / "m.png")]) == 0
    fit = _idx(12)
    labels = torch.as_tensor(ds.f[fit, 0] == 1, dtype=torch.float32)
    w = m.fit_attribute(m.encode(ds.x[fit]), labels)
    x = ds.x[_idx(1)]
    rows = [x, m.manipulate(x, w, 3.0, num_steps=1)]
    assert np.abs(_png(tmp_path / "m.png") - _expected(rows, 1, tmp_path / "e.png")).max() <= 1


def test_errors_are_messages_not_tracebacks(folders, tmp_path, capsys):
    out, _ = folders
    diffae, disdiff = str(out["diffae"][0]), str(out["disdiff"][0])
    png = str(tmp_path / "a.png")
    cases = [
        (["diffae", "swap", disdiff, "--out", png], "holds a DisDiff, not a DiffAE model (its verbs: diffrep disdiff ...)"),
        (["disdiff", "swap", diffae, "--out", png], "holds a DiffAE, not a DisDiff model (its verbs: diffrep diffae ...)"),
        (["infodiffusion", "swap", str(tmp_path / "nope"), "--out", png], "no such model folder"),
        (["diffae", "swap", diffae, "--dims", "4", "--out", png], "--dims must be dimensions of the code in 0..3, got [4]"),
        (["disdiff", "swap", disdiff, "--dims", "0", "3", "--out", png], "--dims must be unit indices in 0..2, got [3]"),
        (["disdiff", "traverse", disdiff, "--dim", "-1", "--out", png], "--dim must be one of the unit indices in 0..2"),
        (["diffae", "interpolate", diffae, "--n", "1", "--out", png], "--n must be >= 2 (a pair), got 1"),
        (["infodiffusion", "reconstruct", str(out["infodiffusion"][0]), "--n", "0", "--out", png], "--n must be >= 1"),
        (["diffae", "reconstruct", diffae, "--steps", "1001", "--out", png], "--steps must be in [1, 1000]"),
        (["diffae", "traverse", diffae, "--out", png], "this DiffAE has no z_sem statistics (a stage-1 folder)"),
        (["diffae", "traverse", str(out["diffae-latent"][0]), "--values", "nan", "--out", png], "--values must be finite"),
        (["diffae", "swap", diffae, "--out", str(tmp_path)], "is a folder; give a file path"),
        (["diffae", "swap", diffae, "--out", str(tmp_path / "a.npz")], "give a file name ending in .png"),
        (["disdiff", "traverse", disdiff, "--pca-images", "1", "--out", png], "--pca-images must be >= 2"),
        (["diffae", "train", "disdiff/shapes3d-cpu"], "this command takes a diffae/ recipe"),
        (["diffae", "manipulate", diffae, "--factor", "0", "--out", png], "manipulate moves the standardised z_sem"),
        (["disdiff", "swap", str(out["disdiff-pretrain"][0]), "--out", png], "a DisDiff pre-training folder (stage pretrain"),
        (["diffae", "manipulate", str(out["diffae-latent"][0]), "--factor", "1", "--out", png], "--factor must be in [0, 1)"),
        (["diffae", "manipulate", str(out["diffae-latent"][0]), "--factor", "0", "--value", "2", "--fit-images", "6",
          "--out", png], "--factor 0 --value 2: none of the 6 fitting images has it; the classifier needs both"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit) as e:   # argparse: exit 2 with the verb's usage
        main(["diffae", "swap", diffae, "--bogus"])
    assert e.value.code == 2 and "diffrep diffae swap: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_a_stage_folder_of_another_method_is_refused_before_the_weights_are_chosen(folders, tmp_path, capsys):
    """``diffrep train`` of a later stage given another method's folder first said which of its weights it would read
    ("... has no EMA weights; using the raw weights"), then failed on the class."""
    out, _ = folders
    cases = [(["diffae/shapes3d-cpu", "--model.stage", "latent", "--autoencoder_path", str(out["disdiff"][0])],
              f"--autoencoder_path {out['disdiff'][0]} holds a DisDiff; give the final folder of a DiffAE stage-1 run"),
             (["disdiff/shapes3d-cpu", "--pretrained_path", str(out["infodiffusion"][0])],
              f"--pretrained_path {out['infodiffusion'][0]} holds an InfoDiffusion; give the final folder of a DisDiff "
              "pre-training run (disdiff/...-pretrain) or of a UNet")]
    for argv, message in cases:
        assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert message in err and "EMA" not in err, err
        assert not (tmp_path / "run").exists()
