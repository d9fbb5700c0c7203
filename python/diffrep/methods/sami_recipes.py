"""Moved to :mod:`diffrep.recipes.sami` (the disks dataset to :mod:`diffrep.data.disks`); old names warn."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "SAMIDataConfig": "diffrep.recipes.sami:SAMIDataConfig",
    "SAMIRecipeConfig": "diffrep.recipes.sami:SAMIRecipeConfig",
    "build_dataset": "diffrep.recipes.sami:build_dataset",
    "build": "diffrep.recipes.sami:build",
    "disks_config": "diffrep.recipes.sami:disks_config",
    "celeba64_config": "diffrep.recipes.sami:celeba64_config",
    "celebahq256_frozen_config": "diffrep.recipes.sami:celebahq256_frozen_config",
    "disks_cpu_config": "diffrep.recipes.sami:disks_cpu_config",
    "disks_cpu_frozen_config": "diffrep.recipes.sami:disks_cpu_frozen_config",
    "disks_cpu_frozen_d8_config": "diffrep.recipes.sami:disks_cpu_frozen_d8_config",
    "DisksTensorDataset": "diffrep.data.disks:DisksTensorDataset",
    "disks_geometry": "diffrep.data.disks:disks_geometry",
})
