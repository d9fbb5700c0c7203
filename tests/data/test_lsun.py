"""The LSUN reader on fixture LMDB environments written here in the release's layout: one
environment per category/split (``<category>_<split>_lmdb/`` with ``data.mdb``), keys the 40-hex
image ids, values the encoded image bytes (WebP, as the scene releases ship; JPEG also read)."""

import hashlib
import io
import pickle

import numpy as np
import pytest
from PIL import Image

lmdb = pytest.importorskip("lmdb", reason="the LSUN reader needs the lmdb package (pip install diffrep[lsun])")

import diffrep.data as D  # noqa: E402
from diffrep.data.lsun import LSUN, center_square, find_lmdb  # noqa: E402


def _image(k, h, w):
    """A deterministic RGB image whose pixels encode k, the row and the column."""
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([(i * 7 + k * 31) % 256, (j * 5 + k * 13) % 256, ((i + j) * 3 + k) % 256], -1).astype(np.uint8)


def _encode(arr, fmt):
    buf = io.BytesIO()
    if fmt == "WEBP":
        Image.fromarray(arr).save(buf, format="WEBP", lossless=True, quality=100)
    else:
        Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _write_env(path, items, fmt="WEBP"):
    """Write {id: array} as the release does: key = id (ASCII), value = encoded bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 26, subdir=True)
    with env.begin(write=True) as txn:
        for key, arr in items.items():
            txn.put(key.encode("ascii"), arr if isinstance(arr, bytes) else _encode(arr, fmt))
    env.close()


def _ids(n, salt="bedroom"):
    return [hashlib.sha1(f"{salt}{k}".encode()).hexdigest() for k in range(n)]


@pytest.fixture()
def bedroom(tmp_path):
    """root/bedroom_train_lmdb with 6 non-square (H, W) = (32, 48) images and root/bedroom_val_lmdb with 2."""
    ids = _ids(6)
    imgs = {key: _image(k, 32, 48) for k, key in enumerate(ids)}
    _write_env(tmp_path / "bedroom_train_lmdb", imgs)
    val = {key: _image(100 + k, 40, 24) for k, key in enumerate(_ids(2, "val"))}
    _write_env(tmp_path / "bedroom_val_lmdb", val)
    return tmp_path, imgs, val


def test_key_order_and_exact_center_crop(bedroom):
    root, imgs, _ = bedroom
    ds = LSUN(root, size=32)  # 32 x 48 -> the central 32 x 32 square, no resampling: exact pixels
    order = sorted(imgs)  # LMDB returns keys in byte order
    assert len(ds) == 6 and [ds.key(i) for i in range(6)] == order
    raw = ds.images(np.arange(6))
    assert raw.dtype == np.uint8 and raw.shape == (6, 32, 32, 3)
    for i, key in enumerate(order):
        assert np.array_equal(raw[i], imgs[key][:, 8:40]), key  # columns (48 - 32) // 2 .. + 32
    x, y = ds[2]
    assert x.shape == (3, 32, 32) and y.numel() == 0
    ref = imgs[order[2]][:, 8:40].astype(np.float32) / 255 * 2 - 1
    assert np.allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-6)


def test_tall_image_crop_offsets_and_resize(bedroom):
    root, _, val = bedroom
    ds = LSUN(root, split="val", size=24, resample="bilinear", item_format="uint8")
    order = sorted(val)
    raw = ds.images([0, 1])  # 40 x 24 -> rows (40 - 24) // 2 = 8 .. 32
    assert np.array_equal(raw[0], val[order[0]][8:32]) and np.array_equal(raw[1], val[order[1]][8:32])
    small = LSUN(root, split="val", size=12, resample="bilinear")
    want = np.asarray(Image.fromarray(val[order[1]][8:32]).resize((12, 12), Image.BILINEAR))
    assert np.array_equal(small.images([1])[0], want)
    bic = LSUN(root, split="val", size=12)  # bicubic is the default
    want = np.asarray(Image.fromarray(val[order[1]][8:32]).resize((12, 12), Image.BICUBIC))
    assert np.array_equal(bic.images([1])[0], want)
    squash = LSUN(root, split="val", size=12, crop="none", resample="bilinear")
    want = np.asarray(Image.fromarray(val[order[0]]).resize((12, 12), Image.BILINEAR))
    assert np.array_equal(squash.images([0])[0], want)
    assert LSUN(root, split="val", size=None, crop="none").images([0]).shape == (1, 40, 24, 3)


def test_constant_image_stays_constant_through_resize(tmp_path):
    env = tmp_path / "church_outdoor_train_lmdb"
    _write_env(env, {"a" * 40: np.full((50, 70, 3), (200, 10, 90), np.uint8)})
    ds = LSUN(env, category="church_outdoor", size=16)
    assert np.array_equal(ds.images([0])[0], np.broadcast_to(np.array([200, 10, 90], np.uint8), (16, 16, 3)))


def test_jpeg_values_are_read(tmp_path):
    arr = _image(3, 20, 20)
    _write_env(tmp_path / "bedroom_train_lmdb", {"b" * 40: arr}, fmt="JPEG")
    got = LSUN(tmp_path, size=20).images([0])[0]
    want = np.asarray(Image.open(io.BytesIO(_encode(arr, "JPEG"))).convert("RGB"))
    assert np.array_equal(got, want)


def test_subset_start_and_held_out(bedroom):
    root, imgs, _ = bedroom
    order = sorted(imgs)
    first = LSUN(root, size=32, num_images=4)
    rest = LSUN(root, size=32, start=4)
    assert [first.key(i) for i in range(4)] == order[:4] and [rest.key(i) for i in range(2)] == order[4:]
    assert np.array_equal(rest.images([1])[0], imgs[order[5]][:, 8:40])
    with pytest.raises(ValueError, match="holds only 6"):
        LSUN(root, num_images=7)
    with pytest.raises(ValueError, match="holds only 6"):
        LSUN(root, start=6)
    for bad in (dict(num_images=0), dict(start=-1), dict(size=0), dict(crop="random"), dict(resample="nearest"),
                dict(split="test"), dict(category="Bed Room")):
        with pytest.raises(ValueError):
            LSUN(root, **bad)


def test_registry_load_and_roots(bedroom, tmp_path_factory):
    root, imgs, val = bedroom
    ds = D.load("lsun", root=root, size=32)
    assert isinstance(ds, LSUN) and len(ds) == 6 and ds.split == "train"
    assert len(D.load("lsun", root=root, split="val", size=8)) == 2
    assert len(D.load("lsun", root=root / "bedroom_val_lmdb", split="val", size=8)) == 2
    assert "lsun" in D.available() and D.available()["lsun"]["splits"] == ["train", "val"]
    nested = tmp_path_factory.mktemp("nested")
    _write_env(nested / "lsun" / "bedroom_train_lmdb", {k: imgs[k] for k in sorted(imgs)[:2]})
    assert len(D.load("lsun", root=nested, size=32)) == 2
    assert find_lmdb(nested) == nested / "lsun" / "bedroom_train_lmdb"
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(FileNotFoundError, match="lsun"):
        D.load("lsun", root=empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load("lsun", root=empty / "nope")
    with pytest.raises(ValueError, match="procedur"):
        D.load("lsun", root=root, source="procedural")


def test_missing_and_invalid_databases(bedroom, tmp_path_factory):
    root, _, _ = bedroom
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LSUN(root / "missing")
    with pytest.raises(FileNotFoundError, match="bedroom_val_lmdb|data.mdb"):
        LSUN(tmp_path_factory.mktemp("nothing"), split="val")
    with pytest.raises(ValueError, match="is the bedroom val set"):
        LSUN(root / "bedroom_val_lmdb")  # split defaults to train
    junk = tmp_path_factory.mktemp("junk") / "bedroom_train_lmdb"
    junk.mkdir()
    (junk / "data.mdb").write_bytes(b"this is not an LMDB file" * 400)
    with pytest.raises(ValueError, match="not a readable LMDB"):
        LSUN(junk)
    empty = tmp_path_factory.mktemp("empty") / "bedroom_train_lmdb"
    _write_env(empty, {})
    with pytest.raises(ValueError, match="is an empty LMDB database"):
        LSUN(empty)
    bad = tmp_path_factory.mktemp("badvalue") / "bedroom_train_lmdb"
    _write_env(bad, {"c" * 40: b"\x00\x01 not an image"})
    ds = LSUN(bad)
    with pytest.raises(ValueError, match="c{40}.*not a readable image"):
        ds.images([0])


def test_pickles_and_reopens(bedroom):
    root, imgs, _ = bedroom
    ds = LSUN(root, size=32)
    ds.images([0])
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone.images([3])[0], ds.images([3])[0])
    ds.close()
    assert np.array_equal(ds.images([1])[0], imgs[sorted(imgs)[1]][:, 8:40])


def test_center_square_helper():
    im = Image.fromarray(_image(0, 9, 14))
    sq = center_square(im)
    assert sq.size == (9, 9) and np.array_equal(np.asarray(sq), _image(0, 9, 14)[:, 2:11])
