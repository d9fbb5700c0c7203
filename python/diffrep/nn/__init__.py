"""Building blocks: U-Net, encoders/decoders, attention, VQ autoencoder, and the save/load mixin."""

from .encoders import (ConvDecoder, ConvEncoder, ConvVAEConfig, FeatureExtractor, FeatureExtractorConfig, HalfUNet,
                       HalfUNetConfig, PerUnitMLP)
from .gaussian import gaussian_kl
from .layers import AttentionBlock, ResBlock, SpatialTransformer, timestep_embedding
from .pretrained import PretrainedMixin, load_pretrained, model_registry, register_model
from .unet import UNET_PRESETS, SkipDropout, UNet, UNetConfig, unet_preset
from .vq import PatchDiscriminator, VectorQuantizer, VQAutoencoder, VQAutoencoderConfig, hinge_d_loss

__all__ = [
    "gaussian_kl",
    "AttentionBlock", "ResBlock", "SpatialTransformer", "timestep_embedding",
    "PretrainedMixin", "load_pretrained", "model_registry", "register_model",
    "UNet", "UNetConfig", "SkipDropout", "UNET_PRESETS", "unet_preset",
    "HalfUNet", "HalfUNetConfig", "ConvEncoder", "ConvDecoder", "ConvVAEConfig",
    "FeatureExtractor", "FeatureExtractorConfig", "PerUnitMLP",
    "VQAutoencoder", "VQAutoencoderConfig", "VectorQuantizer", "PatchDiscriminator", "hinge_d_loss",
]
