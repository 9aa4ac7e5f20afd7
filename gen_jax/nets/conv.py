"""Convolutional VAE encoder / decoder (no batch norm, so the VAE stays stateless)."""
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.errors import ConfigError
from gen_jax.nets import layers as nets_layers
from gen_jax.nets.layers import DEFAULT_UPSAMPLE, FewChannelConv, SmallInputConv, Upsample2x, gaussian_heads
from gen_jax.nets.layers import activation as get_activation


def decoder_base_shape(out_shape: Sequence[int], num_stages: int) -> tuple[int, int]:
  """Low-res (H, W) the decoder starts from: out H, W divided by 2**num_stages, else ConfigError."""
  h, w = int(out_shape[0]), int(out_shape[1])
  f = 2 ** num_stages
  if num_stages < 1:
    raise ConfigError("config.model.features must list at least one conv stage for arch='conv'")
  if h % f or w % f:
    raise ConfigError(
      f"image size {h}x{w} is not divisible by 2**len(config.model.features)={f} "
      f"({num_stages} upsampling stages); use fewer config.model.features or the 'mlp' arch")
  return h // f, w // f


class ConvEncoder(nn.Module):
  """Image [N,H,W,C] (+ optional one-hot label [N,K] as extra channels) -> (mean, logvar) [N, latent_dim].

  Each entry of ``features`` is a stride-2 ``kernel_size`` conv + activation; then flatten, an optional
  Dense(``dense``) + activation, and two linear heads.
  """
  features: Sequence[int] = (32, 64)
  latent_dim: int = 16
  activation: str = "relu"
  dense: Optional[int] = None
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, y_onehot: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    act = get_activation(self.activation)
    if y_onehot is not None:
      n, h, w, _ = x.shape
      k = y_onehot.shape[-1]
      label_maps = jnp.broadcast_to(y_onehot.astype(x.dtype)[:, None, None, :], (n, h, w, k))
      x = jnp.concatenate([x, label_maps], axis=-1)
    ks = (self.kernel_size, self.kernel_size)
    for i, f in enumerate(self.features):
      if x.shape[-1] <= nets_layers.SMALL_INPUT_CHANNELS:   # an image layer: the same conv as a patches matmul
        conv = SmallInputConv(f, self.kernel_size, 2, name=f"conv_{i}")
      else:
        conv = nn.Conv(f, ks, strides=(2, 2), padding="SAME", name=f"conv_{i}")
      x = act(conv(x))
    x = x.reshape(x.shape[0], -1)
    if self.dense:
      x = act(nn.Dense(self.dense, name="dense")(x))
    return gaussian_heads(x, self.latent_dim)


class ConvDecoder(nn.Module):
  """Latent [N,D] (+ optional one-hot label [N,K] concatenated) -> output [N,H,W,C_out].

  Dense (+ activation) to a [H/2^S, W/2^S, base_features] map (S = len(features); base_features
  defaults to features[0]), then S stages of Upsample2x(features[i]) + activation, then a linear
  3x3 conv to C_out channels (no output activation). ``features`` runs low-res to high-res, e.g. (64, 32).
  """
  features: Sequence[int] = (64, 32)
  out_shape: tuple[int, int, int] = (28, 28, 1)
  activation: str = "relu"
  upsample_method: str = DEFAULT_UPSAMPLE
  base_features: Optional[int] = None
  kernel_size: int = 3

  @nn.compact
  def __call__(self, z: jax.Array, y_onehot: Optional[jax.Array] = None) -> jax.Array:
    act = get_activation(self.activation)
    h0, w0 = decoder_base_shape(self.out_shape, len(self.features))
    c0 = self.base_features or self.features[0]
    if y_onehot is not None:
      z = jnp.concatenate([z, y_onehot.astype(z.dtype)], axis=-1)
    x = act(nn.Dense(h0 * w0 * c0, name="dense")(z)).reshape(z.shape[0], h0, w0, c0)
    for i, f in enumerate(self.features):
      x = act(Upsample2x(f, self.upsample_method, self.kernel_size, name=f"up_{i}")(x))
    ks = (self.kernel_size, self.kernel_size)
    if self.out_shape[2] <= nets_layers.FEW_OUTPUT_CHANNELS:   # an image layer: a matmul + shifted sum
      return FewChannelConv(self.out_shape[2], self.kernel_size, name="out")(x)
    return nn.Conv(self.out_shape[2], ks, padding="SAME", name="out")(x)
