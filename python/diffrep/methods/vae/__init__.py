"""The VAE-family baselines (docs/methods/vae.md): AE, VAE, beta-VAE (+ capacity annealing), beta-TCVAE,
FactorVAE, InfoVAE (MMD), DIP-VAE I/II and the FSQ autoencoder, on disentanglement_lib's networks, with
their regularisers as functions."""

from .beta_tcvae import BetaTCVAE, BetaTCVAEConfig
from .core import VAEBase, VAENetConfig, reconstruction_loss
from .dip import dip_covariance, dip_regulariser
from .dip_vae import DIPVAE, DIPVAEConfig
from .factor_vae import FactorVAE, FactorVAEConfig, discriminator_loss, factor_tc_estimate, permute_dims
from .fsq_ae import FSQAE, FSQAEConfig
from .info_vae import InfoVAE, InfoVAEConfig
from .total_correlation import total_correlation
from .vae import AE, VAE, AEConfig, BetaVAE, BetaVAEConfig, VAEConfig, capacity_at

__all__ = ["AE", "AEConfig", "VAE", "VAEConfig", "BetaVAE", "BetaVAEConfig", "BetaTCVAE", "BetaTCVAEConfig",
           "FactorVAE", "FactorVAEConfig", "InfoVAE", "InfoVAEConfig", "DIPVAE", "DIPVAEConfig", "FSQAE",
           "FSQAEConfig", "VAEBase", "VAENetConfig", "total_correlation", "dip_regulariser", "dip_covariance",
           "reconstruction_loss", "permute_dims", "factor_tc_estimate", "discriminator_loss", "capacity_at",
           "METHOD_CLASSES"]

#: recipe/study name -> class
METHOD_CLASSES = {"ae": AE, "vae": VAE, "beta-vae": BetaVAE, "annealed-vae": BetaVAE, "beta-tcvae": BetaTCVAE,
                  "factor-vae": FactorVAE, "info-vae": InfoVAE, "dip-vae-i": DIPVAE, "dip-vae-ii": DIPVAE,
                  "fsq-ae": FSQAE}
