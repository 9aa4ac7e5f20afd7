"""Fully connected networks: a generic MLP and the MLP VAE encoder / decoder (Burda et al. 2015 style).

Burda et al. 2015 (one stochastic layer): encoder 784-200-200-50, decoder 50-200-200-784, tanh,
i.e. ``MLPEncoder(hidden=(200, 200), latent_dim=50, activation='tanh')`` and
``MLPDecoder(hidden=(200, 200), out_shape=(28, 28, 1), activation='tanh')``.
"""
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.nets.layers import activation as get_activation, gaussian_heads


class MLP(nn.Module):
  """Dense layers of widths ``hidden`` each followed by ``activation``; then an optional linear output."""
  hidden: Sequence[int]
  activation: str = "relu"
  out_features: Optional[int] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = get_activation(self.activation)
    for i, width in enumerate(self.hidden):
      x = act(nn.Dense(width, name=f"dense_{i}")(x))
    if self.out_features is not None:
      x = nn.Dense(self.out_features, name="out")(x)
    return x


def _concat_label(h: jax.Array, y_onehot: Optional[jax.Array]) -> jax.Array:
  """Concatenate a one-hot label [N,K] to features [N,D] (no-op when None)."""
  if y_onehot is None:
    return h
  return jnp.concatenate([h, y_onehot.astype(h.dtype)], axis=-1)


class MLPEncoder(nn.Module):
  """Image [N,H,W,C] (+ optional one-hot label [N,K]) -> (mean, logvar), each [N, latent_dim]."""
  hidden: Sequence[int]
  latent_dim: int
  activation: str = "tanh"

  @nn.compact
  def __call__(self, x: jax.Array, y_onehot: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    h = _concat_label(x.reshape(x.shape[0], -1), y_onehot)
    h = MLP(self.hidden, self.activation, name="body")(h)
    return gaussian_heads(h, self.latent_dim)


class MLPDecoder(nn.Module):
  """Latent [N,D] (+ optional one-hot label [N,K]) -> output [N,H,W,C_out] (no output activation)."""
  hidden: Sequence[int]
  out_shape: tuple[int, int, int]
  activation: str = "tanh"

  @nn.compact
  def __call__(self, z: jax.Array, y_onehot: Optional[jax.Array] = None) -> jax.Array:
    h = _concat_label(z, y_onehot)
    h = MLP(self.hidden, self.activation, out_features=math.prod(self.out_shape), name="body")(h)
    return h.reshape(z.shape[0], *self.out_shape)
