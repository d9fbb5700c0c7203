"""CelebA's readers against the published file layout (list_attr_celeba.txt: a count line, the 40 names, then
"name v1 .. v40" of -1/1; list_eval_partition.txt: "name 0|1|2") and the crop conventions of docs/data.md#celeba
(bilinear resizes). Found by mutation testing (benches/results/mutation_gaps_2026-12-08.md)."""

import numpy as np
import pytest
from PIL import Image

from diffrep.data.celeba import ATTRIBUTES, CelebA, check_crop, crop_image, read_attributes, read_partition


def _noise(seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (218, 178, 3), dtype=np.uint8))


def _root(folder, n=3, parts=(0, 0, 2)):
    """n aligned noise images (PNG bytes under the .jpg names: lossless), all attributes 1 but Male -1 for the
    second, and a partition file."""
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for k, name in enumerate(names):
        _noise(k).save(folder / "img_align_celeba" / name, format="PNG")
    rows = [name + "".join(f" {(-1 if (k == 1 and j == 20) else 1):2d}" for j in range(40)) for k, name in enumerate(names)]
    (folder / "list_attr_celeba.txt").write_text("\n".join([str(n), " ".join(ATTRIBUTES)] + rows) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{m} {p}\n" for m, p in zip(names, parts)))
    return names


def test_crops_resize_bilinearly():
    im = _noise(7)
    # DiffAE: the box (25, 57, 153, 185), then a bilinear resize (not Pillow's bicubic default)
    want = np.asarray(im.crop((25, 57, 153, 185)).resize((40, 40), Image.BILINEAR))
    got = np.asarray(crop_image(im, "diffae", 40))
    assert np.array_equal(got, want)
    assert not np.array_equal(got, np.asarray(im.crop((25, 57, 153, 185)).resize((40, 40), Image.BICUBIC)))
    # CenterCrop(148): top = round((218 - 148) / 2) = 35, left = round((178 - 148) / 2) = 15, then bilinear
    want = np.asarray(im.crop((15, 35, 163, 183)).resize((40, 40), Image.BILINEAR))
    got = np.asarray(crop_image(im, 148, 40))
    assert np.array_equal(got, want)
    assert not np.array_equal(got, np.asarray(im.crop((15, 35, 163, 183)).resize((40, 40), Image.BICUBIC)))


def test_crop_sides_and_sizes():
    assert check_crop(1) == 1 and check_crop(178) == 178  # both ends of [1, 178]
    for bad in (0, 179):
        with pytest.raises(ValueError, match=r"must be in \[1, 178\] \(the aligned images are 178 x 218\)"):
            check_crop(bad)
    assert np.asarray(crop_image(_noise(1), "diffae", 1)).shape == (1, 1, 3)


def test_attribute_file_layout_and_messages(tmp_path):
    p = tmp_path / "list_attr_celeba.txt"
    p.write_text("0\n" + " ".join(ATTRIBUTES) + "\n")  # a count line and a header: no images
    files, vals, names = read_attributes(p)
    assert files == [] and vals.shape == (0, 40) and names == ATTRIBUTES
    row = " ".join(["1"] * 40)
    cases = [
        ("3\n", r"truncated attribute file"),
        ("x" * 50 + "\n" + " ".join(ATTRIBUTES) + "\n", r"first line must be the image count, got 'x{40}'$"),
        ("1\n" + " ".join(ATTRIBUTES[:39]) + "\n", r"header has 39 attribute names, expected 40"),
        ("3\n" + " ".join(ATTRIBUTES) + f"\na.jpg {row}\nb.jpg {row}\n", r"header says 3 images but 2 rows follow"),
        ("2\n" + " ".join(ATTRIBUTES) + f"\na.jpg {row}\nb.jpg {row} 1 1\n", r"row for 'b.jpg' has 42 values, expected 40"),
        ("2\n" + " ".join(ATTRIBUTES) + f"\na.jpg {row}\na.jpg {row}\n", r"image 'a.jpg' is listed more than once"),
        ("1\n" + " ".join(ATTRIBUTES) + f"\na.jpg {row[:-1]}x\n", r"attribute values must be -1/1: invalid literal"),
        ("1\n" + " ".join(ATTRIBUTES) + f"\na.jpg {row[:-1]}0\n", r"attribute values must be -1 or 1$"),
    ]
    for text, why in cases:
        p.write_text(text)
        with pytest.raises(ValueError, match=why) as err:
            read_attributes(p)
        assert str(err.value).startswith(str(p))
    with pytest.raises(FileNotFoundError, match=r"^path: .* \(expected list_attr_celeba.txt\)"):
        read_attributes(tmp_path / "missing.txt")


def test_partition_file_layout_and_messages(tmp_path):
    p = tmp_path / "list_eval_partition.txt"
    p.write_text("a.jpg 0\n\nb.jpg 2\n")  # a blank line is skipped, not the end of the file
    assert read_partition(p) == {"a.jpg": 0, "b.jpg": 2}
    long = "c.jpg " + "3" * 70
    p.write_text(f"a.jpg 0\n{long}\n")
    with pytest.raises(ValueError, match=r"line 2 must be 'name 0\|1\|2', got 'c\.jpg 3{54}'$") as err:
        read_partition(p)
    assert str(err.value).startswith(str(p))
    with pytest.raises(FileNotFoundError, match=r"^path: .* \(expected list_eval_partition.txt\)"):
        read_partition(tmp_path / "missing.txt")


def test_celeba_root_folders_sizes_and_items(tmp_path):
    names = _root(tmp_path / "celeba")  # files one level down, under root/celeba
    d = CelebA(tmp_path, split="all", size=1, item_format="uint8")  # size 1 is a size
    assert d.root == tmp_path / "celeba" and d.files == names and d.images([0, 2]).shape == (2, 1, 1, 3)
    assert d.attributes[:, 20].tolist() == [1, 0, 1]
    empty = d.images([])
    assert empty.shape == (0, 1, 1, 3) and empty.dtype == np.uint8
    # a root with its own files is read, even when root/celeba holds another set
    _root(tmp_path / "both", n=4, parts=(0, 0, 2, 1))
    _root(tmp_path / "both" / "celeba")
    assert len(CelebA(tmp_path / "both", split="all")) == 4
    (tmp_path / "celeba" / "img_align_celeba" / names[1]).unlink()
    with pytest.raises(FileNotFoundError, match=r"^celeba: image 000002\.jpg listed in list_attr_celeba\.txt is missing"):
        d.images([1])


def test_celeba_partition_must_cover_every_image(tmp_path):
    _root(tmp_path)
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n")
    with pytest.raises(ValueError, match=r"no partition entry for '000003\.jpg' \(1 missing\)"):
        CelebA(tmp_path, split="train")
