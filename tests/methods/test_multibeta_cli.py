"""``diffrep multibeta`` verbs and ``diffrep train multibeta/...`` on a tiny model (fast).

Every verb's output is compared with the model's own method called independently on the same inputs
(same images, same seeds), so a verb that decodes at the wrong beta, skips the denoiser or mixes up
images fails; errors are messages (exit code 2), never tracebacks."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.cli import main
from diffrep.data import load
from diffrep.data.pooled import Pooled
from diffrep.methods.multibeta import LatentDenoiser, MultiBeta, multibeta_config
from diffrep.recipes.multibeta import MultiBetaRecipeConfig
from diffrep.recipes.runinfo import write_run_info
from diffrep.viz import save_image

BETA = 0.5


def _tiny_config(num_steps=4):
    return multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=num_steps,
                            vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})


def _save(model, folder):
    model.save_pretrained(folder)
    write_run_info(folder, "multibeta/dsprites-cpu", MultiBetaRecipeConfig(model=_tiny_config(), pool=2))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(phase-2 model folder, phase-1-only folder, the phase-2 model)."""
    torch.manual_seed(0)
    m = MultiBeta(_tiny_config())
    with torch.no_grad():  # FiLM starts at zero (beta has no effect): perturb it so that a wrong beta shows
        for name, p in m.vae.named_parameters():
            if "film" in name or "embed" in name:
                p.add_(0.3 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("mb")
    p1 = _save(m, root / "phase1")
    m.set_phase(2)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    p2 = _save(m, root / "phase2")
    return p2, p1, m.eval()


def _ds():
    return Pooled(load("dsprites", source="procedural"), 2)


def _png(path):
    return np.asarray(Image.open(path))


def _expected_png(images, path, nrow):
    # the verbs enlarge 32 px grids 4 times (nearest neighbour: 128 px per image, as 'diffrep sample')
    save_image(images.float(), path, nrow=nrow, value_range=(-1, 1), scale=4)
    return _png(path)


def _run(*argv):
    return main(["multibeta", *map(str, argv)])


def test_encode_mean_and_noisy_codes(models, tmp_path):
    p2, _, m = models
    assert _run("encode", p2, "--n", 5, "--beta", 0.25, "--seed", 3, "--out", tmp_path / "c.npz") == 0
    z = np.load(tmp_path / "c.npz")
    idx = torch.randint(0, 737280, (5,), generator=torch.Generator().manual_seed(3)).tolist()
    assert z["indices"].tolist() == idx and float(z["beta"]) == 0.25 and not bool(z["noise"])
    ds = _ds()
    x = torch.stack([ds[i][0] for i in idx])
    assert np.allclose(z["codes"], m.encode(x, 0.25).numpy(), atol=1e-6)
    assert np.array_equal(z["factors"], np.stack([ds[i][1].numpy() for i in idx]))
    # --noise: f + sigma_beta xi with xi from the seeded generator
    assert _run("encode", p2, "--n", 5, "--beta", 0.25, "--seed", 3, "--noise", "--out", tmp_path / "n.npz") == 0
    zn = np.load(tmp_path / "n.npz")
    xi = torch.randn((5, 3), generator=torch.Generator().manual_seed(3))
    want = m.encode(x, 0.25) + m.vae.sigma(0.25) * xi
    assert np.allclose(zn["codes"], want.numpy(), atol=1e-5)
    # default beta: the model's representation_beta (0.5)
    assert _run("encode", p2, "--n", 2, "--out", tmp_path / "d.npz") == 0
    assert float(np.load(tmp_path / "d.npz")["beta"]) == m.config.representation_beta


def test_decode_direct_and_denoised(models, tmp_path):
    p2, _, m = models
    codes = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    np.savez(tmp_path / "c.npz", codes=codes.numpy(), beta=np.float64(BETA))
    assert _run("decode", p2, "--codes", tmp_path / "c.npz", "--out", tmp_path / "a.png") == 0
    assert np.array_equal(_png(tmp_path / "a.png"), _expected_png(m.decode(codes, BETA), tmp_path / "ea.png", 2))
    assert _png(tmp_path / "a.png").std() > 5  # not a blank grid
    other = _expected_png(m.decode(codes, 0.0), tmp_path / "eo.png", 2)
    assert not np.array_equal(_png(tmp_path / "a.png"), other)  # the beta of the file is used
    assert _run("decode", p2, "--codes", tmp_path / "c.npz", "--denoise", "--seed", 7, "--out", tmp_path / "b.png") == 0
    want = m.denoise_decode(codes, BETA, generator=torch.Generator().manual_seed(7))
    assert np.array_equal(_png(tmp_path / "b.png"), _expected_png(want, tmp_path / "eb.png", 2))
    assert _run("decode", p2, "--codes", tmp_path / "c.npz", "--beta", 0.0, "--out", tmp_path / "z.png") == 0
    assert np.array_equal(_png(tmp_path / "z.png"), other)


def test_denoise_codes(models, tmp_path):
    p2, _, m = models
    codes = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    np.savez(tmp_path / "c.npz", codes=codes.numpy(), beta=np.float64(0.75))
    assert _run("denoise", p2, "--codes", tmp_path / "c.npz", "--beta-to", 0.25, "--seed", 4,
                "--out", tmp_path / "o.npz", "--png", tmp_path / "o.png") == 0
    out = np.load(tmp_path / "o.npz")
    want = m.denoise(codes, 0.75, 0.25, generator=torch.Generator().manual_seed(4))
    assert float(out["beta"]) == 0.25 and np.allclose(out["codes"], want.numpy(), atol=1e-6)
    assert not np.allclose(out["codes"], codes.numpy(), atol=1e-3)
    assert np.array_equal(_png(tmp_path / "o.png"), _expected_png(m.decode(want, 0.25), tmp_path / "e.png", 2))
    assert _run("denoise", p2, "--codes", tmp_path / "c.npz", "--beta-to", 1.0) == 2


def test_off_grid_betas_are_snapped_and_said(models, tmp_path, capsys):
    """A beta off the grid i tau (tau = 1/4 here): Algorithm 2 runs between grid values, so 'denoise' records the grid
    value its codes end at (it wrote the unsnapped --beta-to) and says how many steps ran (0.1 -> 0 ran none and said
    "denoised from beta = 0.1 to 0"); the verbs that denoise say which grid value the chain starts from."""
    p2, _, m = models
    codes = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    np.savez(tmp_path / "c.npz", codes=codes.numpy(), beta=np.float64(0.7))
    capsys.readouterr()
    assert _run("denoise", p2, "--codes", tmp_path / "c.npz", "--beta-to", 0.3, "--seed", 4,
                "--out", tmp_path / "o.npz") == 0
    err = capsys.readouterr().err
    out = np.load(tmp_path / "o.npz")
    # 0.7 / 0.25 = 2.8 -> grid index 3; 0.3 / 0.25 = 1.2 -> 1: two steps, from 0.75 to 0.25
    want = m.denoise(codes, 0.75, 0.25, generator=torch.Generator().manual_seed(4))
    assert float(out["beta"]) == 0.25 and np.allclose(out["codes"], want.numpy(), atol=1e-6)
    assert "note: --beta-from 0.7 is off the grid of Algorithm 2 (tau = B/N = 0.25)" in err, err
    assert "nearest grid value, 0.75" in err and "nearest grid value, 0.25" in err, err
    assert "denoised from beta = 0.75 to 0.25 (2 steps of Algorithm 2)" in err, err
    np.savez(tmp_path / "low.npz", codes=codes.numpy(), beta=np.float64(0.1))
    assert _run("denoise", p2, "--codes", tmp_path / "low.npz", "--out", tmp_path / "z.npz") == 0
    err = capsys.readouterr().err
    assert "from beta = 0 to 0 (0 steps of Algorithm 2: the codes are unchanged)" in err, err
    assert np.array_equal(np.load(tmp_path / "z.npz")["codes"], codes.numpy())
    # a grid beta says nothing
    np.savez(tmp_path / "g.npz", codes=codes.numpy(), beta=np.float64(0.5))
    assert _run("denoise", p2, "--codes", tmp_path / "g.npz", "--out", tmp_path / "h.npz") == 0
    err = capsys.readouterr().err
    assert "note:" not in err and "from beta = 0.5 to 0 (2 steps of Algorithm 2)" in err, err
    for argv in (("decode", p2, "--codes", tmp_path / "c.npz", "--denoise", "--out", tmp_path / "d.png"),
                 ("sweep", p2, "--n", 1, "--betas", "0.5,0.6", "--out", tmp_path / "s.png"),
                 ("traverse", p2, "--beta", 0.6, "--dims", 0, "--out", tmp_path / "t.png"),
                 ("edit", p2, "--beta", 0.6, "--direction", 0, "--out", tmp_path / "e.png")):
        assert _run(*argv) == 0, argv
        err = capsys.readouterr().err
        # 0.6 / 0.25 = 2.4 -> 0.5, and the file's 0.7 -> 0.75
        assert err.count("is off the grid") == 1 and ("nearest grid value, 0.5" in err or "grid value, 0.75" in err), \
            (argv, err)
    # decoding directly reads the tables off the grid (docs: off_grid), no chain: no note
    assert _run("traverse", p2, "--beta", 0.6, "--dims", 0, "--direct", "--out", tmp_path / "t2.png") == 0
    assert "off the grid" not in capsys.readouterr().err


def test_traverse_edit_sweep_sample(models, tmp_path):
    p2, _, m = models
    ds = _ds()
    idx = torch.randint(0, 737280, (2,), generator=torch.Generator().manual_seed(0)).tolist()
    x = torch.stack([ds[i][0] for i in idx])
    assert _run("traverse", p2, "--n", 1, "--dims", "0,2", "--values=-1,1", "--direct", "--out", tmp_path / "t.png") == 0
    grid = m.traverse(x[:1], BETA, dims=[0, 2], values=[-1.0, 1.0], denoise=False)
    assert np.array_equal(_png(tmp_path / "t.png"), _expected_png(grid.reshape(-1, 1, 32, 32), tmp_path / "et.png", 2))
    assert _run("edit", p2, "--n", 2, "--direction", 1, "--alphas=-2,2", "--direct", "--out", tmp_path / "e.png") == 0
    e = torch.zeros(3)
    e[1] = 1
    ed = m.edit(x, BETA, e, [-2.0, 2.0], denoise=False)
    want = torch.cat([x[:, None], ed], 1).reshape(-1, 1, 32, 32)
    assert np.array_equal(_png(tmp_path / "e.png"), _expected_png(want, tmp_path / "ee.png", 3))
    np.save(tmp_path / "dir.npy", np.array([0.0, 1.0, 0.0], np.float32))
    assert _run("edit", p2, "--n", 2, "--direction", tmp_path / "dir.npy", "--alphas=-2,2", "--direct",
                "--out", tmp_path / "f.png") == 0
    assert np.array_equal(_png(tmp_path / "f.png"), _png(tmp_path / "e.png"))
    assert _run("sweep", p2, "--n", 1, "--betas", "0.25,0.75", "--seed", 1, "--out", tmp_path / "s.png") == 0
    x1 = ds[torch.randint(0, 737280, (1,), generator=torch.Generator().manual_seed(1)).item()][0][None]
    res = m.beta_sweep(x1, [0.25, 0.75], generator=torch.Generator().manual_seed(1))
    rows = torch.cat([torch.cat([x1, res["direct"][:, 0]]), torch.cat([x1, res["denoised"][:, 0]])])
    assert np.array_equal(_png(tmp_path / "s.png"), _expected_png(rows, tmp_path / "es.png", 3))
    assert _run("sample", p2, "--n", 4, "--seed", 2, "--out", tmp_path / "g.png") == 0
    want = m.sample(4, generator=torch.Generator().manual_seed(2))
    assert np.array_equal(_png(tmp_path / "g.png"), _expected_png(want, tmp_path / "eg.png", 2))


def test_curve_and_eval(models, tmp_path):
    from diffrep.analysis.multibeta import information_curve

    p2, _, m = models
    assert _run("curve", p2, "--n", 16, "--betas", "0,0.5,1", "--json", tmp_path / "c.json") == 0
    c = json.loads((tmp_path / "c.json").read_text())
    ds = _ds()
    idx = torch.randint(0, 737280, (16,), generator=torch.Generator().manual_seed(0)).tolist()
    want = information_curve(m.vae, torch.stack([ds[i][0] for i in idx]), [0.0, 0.5, 1.0])
    assert c["betas"] == [0.0, 0.5, 1.0] and np.allclose(c["mse"], want["mse"]) and np.allclose(c["rate"], want["rate"])
    assert c["representation_beta"] == BETA
    assert _run("eval", p2, "--betas", "0.25,0.75", "--metrics", "mig", "--num-train", 60, "--num-test", 30,
                "--json", tmp_path / "e.json") == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert [r["beta"] for r in e["curve"]] == [0.25, 0.75] and all(0 <= r["mig"] <= 1 for r in e["curve"])
    assert _run("eval", p2, "--beta", 0.75, "--metrics", "mig", "--num-train", 60, "--num-test", 30,
                "--json", tmp_path / "one.json") == 0
    assert json.loads((tmp_path / "one.json").read_text())["curve"][0] == e["curve"][1]


def test_curve_says_why_explained_is_nan(models, tmp_path, capsys):
    """The 'explained' column printed a bare nan; the reason is now on stderr, and it follows the curve's own numbers
    (an untrained tiny model: its beta = 0 decode error is above the data's variance)."""
    p2, _, m = models
    capsys.readouterr()
    assert _run("curve", p2, "--n", 8, "--betas", "0.5,0.9", "--json", tmp_path / "a.json") == 0
    assert "explained is nan: it is relative to the beta = 0 code: add 0 to --betas" in capsys.readouterr().err
    assert _run("curve", p2, "--n", 8, "--betas", "0,0.5", "--json", tmp_path / "b.json") == 0
    err = capsys.readouterr().err
    c = json.loads((tmp_path / "b.json").read_text())
    assert c["mse"][0] >= c["variance"]  # the fixture's untrained model (4.0 against 0.17)
    assert f"decode error ({c['mse'][0]:.4g}) is not below the data's variance ({c['variance']:.4g})" in err
    assert all(r != r for r in c["explained"])  # NaN in the JSON


def test_errors_are_messages(models, tmp_path, capsys):
    p2, p1, m = models
    np.savez(tmp_path / "c.npz", codes=np.zeros((2, 3), np.float32), beta=np.float64(0.5))
    np.savez(tmp_path / "bad.npz", codes=np.zeros((2, 4), np.float32), beta=np.float64(0.5))
    np.savez(tmp_path / "nobeta.npz", codes=np.zeros((2, 3), np.float32))
    LatentDenoiser(_tiny_config().denoiser).save_pretrained(tmp_path / "den")
    cases = [
        (("decode", tmp_path / "nope", "--codes", tmp_path / "c.npz"), "does not exist"),
        (("decode", tmp_path, "--codes", tmp_path / "c.npz"), "no config.json"),
        (("decode", tmp_path / "den", "--codes", tmp_path / "c.npz"), "not a MultiBeta"),
        (("decode", p2, "--codes", tmp_path / "missing.npz"), "--codes " + str(tmp_path / "missing.npz") + ": no such file"),
        (("decode", p2, "--codes", tmp_path / "bad.npz"), "latent is"),
        (("decode", p2, "--codes", tmp_path / "nobeta.npz"), "pass --beta"),
        (("decode", p2, "--codes", tmp_path / "c.npz", "--beta", 1.5), "must lie in"),
        (("decode", p1, "--codes", tmp_path / "c.npz", "--denoise"), "phase 1 only"),
        (("sample", p1), "phase 1 only"),
        (("sweep", p2, "--betas", "a,b"), "comma-separated"),
        (("traverse", p2, "--dims", "5"), "latent units"),
        (("edit", p2, "--direction", tmp_path / "x.npy"), "neither"),
        (("encode", p2, "--n", 0), "--n must be"),
        (("encode", p2, "--pool", 4), "gives"),
        (("eval", p2, "--metrics", "fid"), "unknown"),
        (("curve", p2, "--betas", "0.5,0.25"), "--betas must be strictly increasing, got '0.5,0.25'"),
    ]
    for argv, msg in cases:
        capsys.readouterr()
        assert _run(*argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
    # which phase-1 model: a run's phase1/final has the pipeline in the run's final/; any other needs phase 2 trained
    import shutil

    shutil.copytree(p1, tmp_path / "run" / "phase1" / "final")
    for folder, hint in ((p1, f"train it: diffrep train RECIPE --phases '[2]' --vae_from {p1}; or decode directly"),
                         (tmp_path / "run" / "phase1" / "final", "use the run's final/; or decode directly")):
        assert _run("sample", folder) == 2
        assert f"need phase 2 ({hint})" in capsys.readouterr().err
    # phase-1 models still encode and decode directly
    assert _run("decode", p1, "--codes", tmp_path / "c.npz", "--out", tmp_path / "p1.png") == 0
    with pytest.raises(SystemExit) as exc:
        _run("sweep", p2, "--bogus")
    assert exc.value.code == 2


def test_wrong_files_are_messages(models, tmp_path, capsys):
    """Files a newcomer passes by mistake: a .npy where --codes wants the .npz 'encode' writes (was "'numpy.ndarray'
    object does not support the context manager protocol"), an .npz where --direction wants a .npy (was an
    AttributeError traceback), a 'beta' entry that is not one number (was "only 0-dimensional arrays can be
    converted"), numpy's allow_pickle advice, and a file given as MODEL (was "does not exist")."""
    p2, _, m = models
    np.save(tmp_path / "codes.npy", np.zeros((2, 3), np.float32))
    np.savez(tmp_path / "two_betas.npz", codes=np.zeros((2, 3), np.float32), beta=np.array([0.5, 0.25]))
    np.savez(tmp_path / "text_beta.npz", codes=np.zeros((2, 3), np.float32), beta="half")
    np.savez(tmp_path / "object.npz", codes=np.array([{}], dtype=object), beta=0.5)
    np.savez(tmp_path / "dir.npz", d=np.ones(3, np.float32))
    np.save(tmp_path / "object.npy", np.array([{}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npz").write_text("not numpy")
    c = tmp_path / "ok.npz"
    np.savez(c, codes=np.zeros((2, 3), np.float32), beta=np.int64(0))  # an integer beta is one number too
    cases = [
        (("decode", p2, "--codes", tmp_path / "codes.npy"), "is a single .npy array; pass an .npz holding 'codes'"),
        (("decode", p2, "--codes", tmp_path / "two_betas.npz"), "'beta' must be one number"),
        (("denoise", p2, "--codes", tmp_path / "text_beta.npz"), "'beta' must be one number"),
        (("decode", p2, "--codes", tmp_path / "object.npz"), "object (pickled) arrays, which are never loaded"),
        (("decode", p2, "--codes", tmp_path / "junk.npz"), "is not an .npz archive of arrays"),
        (("decode", p2, "--codes", tmp_path), "is a folder; give the .npz file that 'encode' or 'denoise' wrote"),
        (("edit", p2, "--direction", tmp_path / "dir.npz"), "is an .npz archive; pass a .npy file"),
        (("edit", p2, "--direction", tmp_path / "object.npy"), "is not a .npy array file"),
        (("edit", p2, "--direction", tmp_path / "junk.npz"), "is not a .npy array file"),
        (("encode", p2 / "model.safetensors"), f"model.safetensors is a file; give the model folder that holds it ({p2})"),
    ]
    for argv, msg in cases:
        capsys.readouterr()
        assert _run(*argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and "allow_pickle" not in err, (argv, err)
    # the integer beta decodes exactly as the model's own direct decode at beta = 0
    assert _run("decode", p2, "--codes", c, "--out", tmp_path / "d.png") == 0
    want = _expected_png(m.decode(torch.zeros(2, 3), 0.0), tmp_path / "ref.png", nrow=2)
    assert np.array_equal(_png(tmp_path / "d.png"), want)


@pytest.mark.parametrize("verb", ["encode", "decode", "denoise", "sweep", "traverse", "edit", "sample", "curve", "eval",
                                  "train", "recipes"])
def test_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        _run(verb, "--help")
    assert exc.value.code == 0 and "usage: diffrep multibeta " + verb in capsys.readouterr().out


def test_train_two_phases_resume_and_refusal(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--model.vae.hidden", "16", "--model.vae.beta_embed_dim", "8", "--model.denoiser.hidden", "16",
            "--model.denoiser.depth", "1", "--train.steps", "2", "--train_latent.steps", "3", "--train.batch_size", "8",
            "--train_latent.batch_size", "8", "--informative_images", "8", "--train.ckpt_every", "0",
            "--train_latent.ckpt_every", "0"]
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(out), *tiny]) == 0
    for ph, steps in (("phase1", 2), ("phase2", 3)):
        assert (out / ph / "checkpoints" / f"step-{steps:08d}").is_dir() and (out / ph / "run.json").is_file()
    from diffrep.nn import load_pretrained

    final = load_pretrained(out / "final")
    assert isinstance(final, MultiBeta) and final.phase == 2 and int(final.denoiser.schedule_set)
    info = json.loads((out / "phase1" / "information.json").read_text())
    assert info["betas"][0] == 0.0 and len(info["mse"]) == len(info["betas"])
    if info["chosen_beta"] is not None:
        assert final.config.representation_beta == info["chosen_beta"]
    # the denoiser's schedule is the VAE's sigma table
    assert torch.allclose(final.denoiser.sigma_table, final.vae.sigma_grid().detach(), atol=1e-6)
    assert json.loads((out / "final" / "run.json").read_text())["data"]["pool"] == 2
    capsys.readouterr()
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(out), *tiny]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["multibeta", "train", "multibeta/dsprites-cpu", "--out", str(out), "--resume", "latest", *tiny]) == 0
    assert main(["multibeta", "train", "paramrel/digits"]) == 2
    # phase 2 alone from an earlier run's VAE
    out2 = tmp_path / "run2"
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(out2), *tiny, "--phases", "[2]",
                 "--vae_from", str(out / "final")]) == 0
    again = load_pretrained(out2 / "final")
    for k, v in final.vae.state_dict().items():
        assert torch.equal(v, again.vae.state_dict()[k]), k
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(tmp_path / "r3"), "--phases", "[2]"]) == 2
    # vae_from given the run folder (not its final/) or a missing one: load_pretrained said "not a save_pretrained
    # directory"; now the message names the folder to pass
    for src, msg in ((out, f"is a run folder; give the model folder it saved: --vae_from {out / 'final'}"),
                     (tmp_path / "nope", "does not exist: give a model folder written by save_pretrained")):
        capsys.readouterr()
        assert main(["train", "multibeta/dsprites-cpu", "--out", str(tmp_path / "r4"), *tiny, "--phases", "[2]",
                     "--vae_from", str(src)]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err


def test_generic_eval_reads_the_code_at_representation_beta(models):
    """``diffrep eval --model`` calls ``encode(x)``: a MultiBeta answers with the code at representation_beta, and
    the image-size check knows where a MultiBeta keeps its image size."""
    from diffrep.cli.eval import encode_dataset
    from diffrep.recipes.encode import _model_image_size

    p2, _, m = models
    arrays = encode_dataset(str(p2), None, num_train=6, num_test=4, seed=2)
    ds = _ds()
    rs = np.random.RandomState(2)
    f = ds.sample_factors(6, rs)
    x = torch.from_numpy(ds.sample_observations_from_factors(f, rs)).permute(0, 3, 1, 2) * 2 - 1
    assert np.array_equal(arrays["factors"], f)
    assert arrays["codes"].dtype == np.float32  # the model's precision, as disentanglement_lib hands codes over
    assert np.allclose(arrays["codes"], m.encode(x, m.config.representation_beta).double().numpy(), atol=1e-6)
    assert not np.allclose(arrays["codes"], m.encode(x, 0.0).double().numpy(), atol=1e-3)
    assert _model_image_size(m) == 32
