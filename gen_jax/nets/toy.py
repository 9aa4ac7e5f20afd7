"""MLP generator / discriminator for 2-D toy data (mixtures of Gaussians, rings; e.g. Metz et al. 2017)."""
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.nets.gan_layers import SNDense, check_feature_layer, projection
from gen_jax.nets.layers import activation as get_activation


class ToyGenerator(nn.Module):
  """z [N,D] (+ one-hot y concatenated when ``num_classes``) -> x [N, out_dim], linear (unbounded) output."""
  hidden: Sequence[int] = (128, 128, 128)
  out_dim: int = 2
  activation: str = "relu"
  num_classes: Optional[int] = None

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None, train: bool = True) -> jax.Array:
    del train  # No batch norm: same output in both modes.
    act = get_activation(self.activation)
    h = z
    if self.num_classes is not None:
      if y is None:
        raise ValueError(f"this generator is conditional on {self.num_classes} classes: pass labels y (int [N])")
      h = jnp.concatenate([h, jax.nn.one_hot(y, self.num_classes, dtype=h.dtype)], axis=-1)
    for i, width in enumerate(self.hidden):
      h = act(nn.Dense(width, name=f"dense_{i}")(h))
    return nn.Dense(self.out_dim, name="out")(h)


class ToyDiscriminator(nn.Module):
  """x [N,D] -> (logits [N], features [N, hidden[feature_layer]]): dense layers, no normalization.

  ``features`` is the activation of hidden layer ``feature_layer`` (default -1: the last one).
  With ``num_classes`` the logit gets the projection term <embed(y), h> (Miyato & Koyama 2018).
  """
  hidden: Sequence[int] = (128, 128, 128)
  activation: str = "relu"
  spectral_norm: bool = False
  num_classes: Optional[int] = None
  feature_layer: int = -1

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None, train: bool = True
               ) -> tuple[jax.Array, jax.Array]:
    act = get_activation(self.activation)
    index = check_feature_layer(self.feature_layer, len(self.hidden))
    h = x.reshape(x.shape[0], -1)
    features = h
    for i, width in enumerate(self.hidden):
      h = act(SNDense(width, self.spectral_norm, name=f"dense_{i}")(h, update_stats=train))
      if i == index:
        features = h
    logits = SNDense(1, self.spectral_norm, name="out")(h, update_stats=train)[:, 0]
    return logits + projection(h, y, self.num_classes, self.spectral_norm, train), features
