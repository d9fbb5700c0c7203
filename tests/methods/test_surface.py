"""Every method follows the common surface of diffrep.methods.base."""

import pytest

from diffrep.bfn.model import BFN
from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.methods.base import GenerativeModel, Method, RepresentationModel, TrainableModel, surface_problems
from diffrep.methods.multibeta import LatentDenoiser, MultiBeta, MultiBetaVAE
from diffrep.methods.paramrel import ParamReL
from diffrep.methods.sami import SAMI
from diffrep.methods.vae import AE, DIPVAE, FSQAE, VAE, BetaTCVAE, BetaVAE, FactorVAE, InfoVAE
from diffrep.nn.vq import VQAutoencoder


@pytest.mark.parametrize("cls,protocol", [(ParamReL, Method), (SAMI, Method), (BFN, GenerativeModel),
                                          (VQAutoencoder, RepresentationModel), (MultiBeta, Method),
                                          (MultiBetaVAE, TrainableModel), (LatentDenoiser, TrainableModel),
                                          (DiffAE, Method), (InfoDiffusion, Method), (DisDiff, Method),
                                          *[(c, Method) for c in (AE, VAE, BetaVAE, BetaTCVAE, FactorVAE, InfoVAE,
                                                                  DIPVAE, FSQAE)]])
def test_methods_follow_the_protocol(cls, protocol):
    model = cls(cls.config_class())
    assert isinstance(model, protocol) and isinstance(model, TrainableModel)
    assert surface_problems(cls, protocol) == []


def test_surface_problems_names_what_is_missing():
    class Old:
        def loss(self, batch, generator=None):
            return {}

        def sample(self, count):
            return None

    problems = surface_problems(Old, GenerativeModel)
    assert "loss() lacks keyword 'step'" in problems and "no save_pretrained()" in problems
    assert "sample() does not take n first" in problems and not isinstance(Old(), GenerativeModel)
