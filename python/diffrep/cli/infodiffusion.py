"""``diffrep infodiffusion``: InfoDiffusion's grids (docs/methods/infodiffusion.md, "Command line").

    diffrep infodiffusion recipes
    diffrep infodiffusion train RECIPE [--out DIR] [--a.b VALUE ...]            (as diffrep train)
    diffrep infodiffusion reconstruct MODEL [--n 8] [--fresh-noise] [--steps N] [--out F.png]
    diffrep infodiffusion swap MODEL [--n 4] [--dims K ...] [--steps N] [--out F.png]
    diffrep infodiffusion traverse MODEL [--n 4] [--dim K] [--values V ...] [--steps N] [--out F.png]

The verbs, their data and their flags: :mod:`diffrep.cli._autoencoder_grids`; the code is the posterior
mean of z.
"""

from __future__ import annotations

from ._autoencoder_grids import Family, register_family

FAMILY = Family("infodiffusion", "InfoDiffusion", "diffrep.methods.infodiffusion",
                "InfoDiffusion: train, reconstruct, swap, traverse", "dimensions of z",
                ("reconstruct", "swap", "traverse"))


def register(sub) -> None:
    register_family(sub, FAMILY, __doc__)
