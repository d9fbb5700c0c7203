"""The SAMI disks geometry at any size and the tensor dataset the SAMI recipes train on."""

from diffrep.data.disks import DisksTensorDataset, disks_geometry


def test_disks_geometry_scales_with_size():
    full, half = disks_geometry(32).config, disks_geometry(16).config
    assert (full.radius, full.transition, full.x_range) == (6.0, 2.0, (6.0, 26.0))
    assert (half.radius, half.transition, half.x_range, half.y_range) == (3.0, 1.0, (3.0, 13.0), (3.0, 13.0))
    assert half.background_range == full.background_range and half.foreground == full.foreground
    ds = DisksTensorDataset(8, 16, seed=0)
    assert tuple(ds.images.shape) == (8, 1, 16, 16) and ds.disks.config == half
    assert float(ds.images.min()) >= -1 and float(ds.images.max()) <= 1
