"""``diffrep disdiff``: DisDiff's grids (docs/methods/disdiff.md, "Command line").

    diffrep disdiff recipes
    diffrep disdiff train RECIPE [--out DIR] [--a.b VALUE ...]                  (as diffrep train)
    diffrep disdiff reconstruct MODEL [--n 8] [--fresh-noise] [--steps N] [--out F.png]
    diffrep disdiff swap MODEL [--n 4] [--dims UNIT ...] [--steps N] [--out F.png]
    diffrep disdiff traverse MODEL [--n 4] [--dim UNIT] [--values V ...] [--pca-images N] [--steps N] [--out F.png]

The verbs, their data and their flags: :mod:`diffrep.cli._autoencoder_grids`. ``--dims`` / ``--dim`` are
units (the paper's swap grids swap one unit per row); ``traverse`` moves a unit along its first principal
direction, fitted on ``--pca-images`` dataset images when the folder has no fit (``fit_code_pca``).
"""

from __future__ import annotations

from ._autoencoder_grids import Family, register_family

FAMILY = Family("disdiff", "DisDiff", "diffrep.methods.disdiff",
                "DisDiff: train, reconstruct, swap units, traverse a unit", "units",
                ("reconstruct", "swap", "traverse"))


def register(sub) -> None:
    register_family(sub, FAMILY, __doc__)
