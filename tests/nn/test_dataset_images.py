"""``diffrep.nn.images.dataset_images``: the images of dataset indices, one batched read where the dataset
takes an index array, else item by item; both paths give the images the items hold."""

import numpy as np
import pytest
import torch

from diffrep.nn.images import dataset_images

IMAGES = torch.arange(5 * 2 * 3 * 3, dtype=torch.float32).reshape(5, 2, 3, 3)


class _ItemsOnly:
    """Answers one int index only (an array index raises TypeError, as a file-backed set may)."""

    def __len__(self):
        return len(IMAGES)

    def __getitem__(self, i):
        if not isinstance(i, (int, np.integer)):
            raise TypeError("one index at a time")
        return IMAGES[int(i)], int(i)


class _Batched(_ItemsOnly):
    """Answers an index array with one (images, targets) batch; counts the reads."""

    reads = 0

    def __getitem__(self, i):
        self.reads += 1
        if isinstance(i, np.ndarray):
            return IMAGES[torch.from_numpy(i)], torch.from_numpy(i)
        return super().__getitem__(i)


@pytest.mark.parametrize("cls", [_ItemsOnly, _Batched])
def test_the_images_of_the_indices_in_their_order(cls):
    ds = cls()
    got = dataset_images(ds, [3, 0, 4])
    assert torch.equal(got, torch.stack([IMAGES[3], IMAGES[0], IMAGES[4]]))
    assert torch.equal(dataset_images(ds, range(1, 3)), IMAGES[1:3])


def test_a_batched_dataset_is_read_once():
    ds = _Batched()
    dataset_images(ds, range(5))
    assert ds.reads == 1


@pytest.mark.parametrize("bad, match", [("data.npz", "map-style dataset of images"), (3, "map-style dataset")])
def test_refuses_a_non_dataset(bad, match):
    with pytest.raises(TypeError, match=match):
        dataset_images(bad, [0])


@pytest.mark.parametrize("idx", [[], [0.5], [True]])
def test_refuses_bad_indices(idx):
    with pytest.raises(ValueError, match="idx must be a non-empty sequence of ints"):
        dataset_images(_ItemsOnly(), idx)
