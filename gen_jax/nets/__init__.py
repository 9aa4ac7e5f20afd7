"""Network bodies: shared layers, MLP and conv encoders/decoders, the VAE module, GAN generators/discriminators."""
from gen_jax.nets.conv import ConvDecoder, ConvEncoder, decoder_base_shape
from gen_jax.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gen_jax.nets.gan import GAN_ARCHS, build_gan
from gen_jax.nets.gan_layers import (
  ConditionalBatchNorm, SNConv, SNDense, SNEmbed, downsample2x, maybe_sn, num_stages, spectral_norm_estimate)
from gen_jax.nets.layers import (
  ACTIVATIONS, DEFAULT_UPSAMPLE, UPSAMPLE_METHODS, Upsample2x, activation, check_upsample_method,
  depth_to_space, nearest_upsample2x)
from gen_jax.nets.mlp import MLP, MLPDecoder, MLPEncoder
from gen_jax.nets.resnet_gan import ResNetDiscriminator, ResNetGenerator
from gen_jax.nets.toy import ToyDiscriminator, ToyGenerator
from gen_jax.nets.vae import LOGVAR_MAX, LOGVAR_MIN, VAE, build_vae

__all__ = [
  "ACTIVATIONS", "DEFAULT_UPSAMPLE", "UPSAMPLE_METHODS", "Upsample2x", "activation", "check_upsample_method",
  "depth_to_space", "nearest_upsample2x", "MLP", "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder",
  "decoder_base_shape", "VAE", "build_vae", "LOGVAR_MIN", "LOGVAR_MAX",
  "GAN_ARCHS", "build_gan", "ToyGenerator", "ToyDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
  "ResNetGenerator", "ResNetDiscriminator", "ConditionalBatchNorm", "SNDense", "SNConv", "SNEmbed", "maybe_sn",
  "downsample2x", "num_stages", "spectral_norm_estimate",
]
