"""The trainer's FID preset reads the dataset's images in the range the FID features expect: a dataset
in item_format "01", "hwc01" or "uint8" scores as its "pm1" twin (it was fed to the features as if in
[-1, 1], i.e. washed out)."""

import numpy as np
import pytest
import torch

from diffrep.train.evaluation import metric_preset
from diffrep.train import TrainConfig


class Images(torch.utils.data.Dataset):
    """Four 3x4x4 images in the given item format (the data.base conventions)."""

    def __init__(self, item_format):
        self.item_format = item_format
        g = torch.Generator().manual_seed(0)
        self.u8 = torch.randint(0, 256, (4, 3, 4, 4), generator=g, dtype=torch.uint8)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = self.u8[i]
        return {"uint8": x, "pm1": x.float() / 255 * 2 - 1, "01": x.float() / 255,
                "hwc01": x.permute(1, 2, 0).float() / 255}[self.item_format], 0


@pytest.mark.parametrize("fmt", ["01", "hwc01", "uint8"])
def test_every_item_format_gives_the_real_images_of_pm1(monkeypatch, fmt):
    from diffrep.metrics import generation
    from diffrep.metrics.fid_preprocess import to_uint8_values

    seen = []

    def features(source, **kw):  # records what the preset feeds the Inception features, as its uint8 values
        if isinstance(source, torch.Tensor):
            seen.append(to_uint8_values(source))
        return np.zeros((4, 2))

    monkeypatch.setattr(generation, "inception_features", features)
    cfg = TrainConfig(steps=1, eval_num_samples=4, seed=0)

    class Model(torch.nn.Module):
        def sample(self, n, *, generator=None):
            return torch.zeros(n, 3, 4, 4)

    metric_preset("fid", Images("pm1"), cfg)(Model())
    metric_preset("fid", Images(fmt), cfg)(Model())
    assert len(seen) == 2 and seen[1].shape == seen[0].shape == (4, 3, 4, 4)
    torch.testing.assert_close(seen[1], seen[0], rtol=0, atol=1.0)  # uint8 values, at most one level of rounding apart
