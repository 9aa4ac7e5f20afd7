"""Network bodies: shared layers, MLP and conv encoders/decoders, and the VAE module."""
from gen_jax.nets.conv import ConvDecoder, ConvEncoder, decoder_base_shape
from gen_jax.nets.layers import (
  ACTIVATIONS, DEFAULT_UPSAMPLE, UPSAMPLE_METHODS, Upsample2x, activation, check_upsample_method,
  depth_to_space, nearest_upsample2x)
from gen_jax.nets.mlp import MLP, MLPDecoder, MLPEncoder
from gen_jax.nets.vae import LOGVAR_MAX, LOGVAR_MIN, VAE, build_vae

__all__ = [
  "ACTIVATIONS", "DEFAULT_UPSAMPLE", "UPSAMPLE_METHODS", "Upsample2x", "activation", "check_upsample_method",
  "depth_to_space", "nearest_upsample2x", "MLP", "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder",
  "decoder_base_shape", "VAE", "build_vae", "LOGVAR_MIN", "LOGVAR_MAX",
]
