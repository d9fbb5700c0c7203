"""Methods: one module per model with its objective (``loss(batch, *, step, generator=None)``),
built from :mod:`diffrep.nn`, :mod:`diffrep.bfn` and :mod:`diffrep.diffusion`. Datasets live in
:mod:`diffrep.data`, analyses in :mod:`diffrep.analysis`, recipes in :mod:`diffrep.recipes`."""

from .encdiff import EncDiff, EncDiffConfig
from .multibeta import LatentDenoiser, LatentDenoiserConfig, MultiBeta, MultiBetaConfig, MultiBetaVAE, MultiBetaVAEConfig
from .paramrel import ParamReL, ParamReLConfig
from .sami import SAMI, SAMIConfig
from .toy_ddpm import ToyDDPM, ToyDDPMConfig

__all__ = ["EncDiff", "EncDiffConfig", "MultiBeta", "MultiBetaConfig", "MultiBetaVAE", "MultiBetaVAEConfig",
           "LatentDenoiser", "LatentDenoiserConfig", "SAMI", "SAMIConfig", "ParamReL", "ParamReLConfig", "ToyDDPM",
           "ToyDDPMConfig"]
