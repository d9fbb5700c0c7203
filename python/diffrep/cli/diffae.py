"""``diffrep diffae``: DiffAE's grids (docs/methods/diffae.md, "Command line").

    diffrep diffae recipes
    diffrep diffae train RECIPE [--out DIR] [--a.b VALUE ...]                   (as diffrep train)
    diffrep diffae reconstruct MODEL [--n 8] [--fresh-noise] [--steps N] [--out F.png]
    diffrep diffae swap MODEL [--n 4] [--dims K ...] [--steps N] [--out F.png]
    diffrep diffae traverse MODEL [--n 4] [--dim K] [--values V ...] [--steps N] [--out F.png]
    diffrep diffae interpolate MODEL [--n 4] [--alphas A ...] [--steps N] [--out F.png]
    diffrep diffae manipulate MODEL --factor K [--value V] [--scales S ...] [--fit-images N] [--n 4] [--out F.png]

The verbs, their data and their flags: :mod:`diffrep.cli._autoencoder_grids`. ``traverse`` and ``manipulate``
read the z_sem statistics that stage 2 fits (a stage-1 folder is refused, saying so).
"""

from __future__ import annotations

from ._autoencoder_grids import Family, register_family

FAMILY = Family("diffae", "DiffAE", "diffrep.methods.diffae",
                "DiffAE: train, reconstruct, swap, traverse, interpolate, manipulate", "dimensions of z_sem",
                ("reconstruct", "swap", "traverse", "interpolate", "manipulate"))


def register(sub) -> None:
    register_family(sub, FAMILY, __doc__)
