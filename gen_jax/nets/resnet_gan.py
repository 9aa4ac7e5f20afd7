"""ResNet generator / discriminator of SNGAN (Miyato et al. 2018, CIFAR-10 ResNet; Gulrajani et al. 2017).

Generator: dense z -> [H/2^S, W/2^S, width] (4x4, or 7x7 for 28x28), S up-resblocks (S = 2 for 28, 3 for 32,
4 for 64) at constant width, then BN, ReLU, 3x3 conv to C and tanh. Class-conditional generators use
conditional batch norm in the blocks (Miyato & Koyama 2018).

Discriminator: an optimized first block and S-1 down-resblocks (so the final map is 4x4 or 7x7), final
ReLU, global sum pooling, spectrally normalized dense to one logit (+ projection <embed(y), h>). Layout 'sngan'
is the CIFAR-10 discriminator of Miyato et al. 2018 (and Mimicry): it stops halving one stage earlier (8x8 for
32x32) and adds two residual blocks at that size, with identity shortcuts.
"""
from typing import Optional

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.nets.gan_layers import (
  ConditionalBatchNorm, SNConv, SNDense, check_feature_layer, downsample2x, num_stages, projection)
from gen_jax.nets.layers import DEFAULT_UPSAMPLE, Upsample2x, nearest_upsample2x

D_LAYOUTS = ("halve", "sngan")   # every block halves the map | halve to 8x8 (32x32 input), then two blocks there


def d_block_halves(layout: str, height: int, width: int) -> tuple[bool, ...]:
  """For each residual block of the discriminator of `layout` on an image of this size, whether it halves the map
  (the first, optimized block always does)."""
  s = num_stages(height, width)
  return (True,) * s if layout == "halve" else (True,) * (s - 1) + (False, False)


class UpResBlock(nn.Module):
  """BN -> ReLU -> Upsample2x conv -> BN -> ReLU -> 3x3 conv, plus shortcut 1x1 conv -> nearest x2."""
  features: int
  upsample: str = DEFAULT_UPSAMPLE
  num_classes: Optional[int] = None

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None, train: bool = True) -> jax.Array:
    h = nn.relu(ConditionalBatchNorm(self.num_classes, name="bn_0")(x, y, train))
    h = Upsample2x(self.features, self.upsample, name="up")(h)
    h = nn.relu(ConditionalBatchNorm(self.num_classes, name="bn_1")(h, y, train))
    h = nn.Conv(self.features, (3, 3), padding="SAME", name="conv")(h)
    # A 1x1 conv commutes with nearest upsampling; applying it first is 4x cheaper.
    shortcut = nearest_upsample2x(nn.Conv(self.features, (1, 1), name="shortcut")(x))
    return h + shortcut


class OptimizedDownBlock(nn.Module):
  """First D block: 3x3 conv -> ReLU -> 3x3 conv -> avg pool, plus shortcut avg pool -> 1x1 conv.
  (conv -> avg pool runs as one stride-2 convolution: gan_layers.SNConv(pool=True).)"""
  features: int
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    sn = self.spectral_norm
    h = nn.relu(SNConv(self.features, 3, 1, sn, name="conv_0")(x, update_stats=train))
    h = SNConv(self.features, 3, 1, sn, pool=True, name="conv_1")(h, update_stats=train)
    return h + SNConv(self.features, 1, 1, sn, name="shortcut")(downsample2x(x), update_stats=train)


class DownResBlock(nn.Module):
  """ReLU -> 3x3 conv -> ReLU -> 3x3 conv -> avg pool, plus shortcut 1x1 conv -> avg pool (computed as avg
  pool -> 1x1 conv, and conv -> avg pool as one stride-2 convolution: the same function, fewer FLOPs).
  With `downsample` False: no pooling and the identity as shortcut (SNGAN's blocks at 8x8)."""
  features: int
  spectral_norm: bool = True
  downsample: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    sn = self.spectral_norm
    h = SNConv(self.features, 3, 1, sn, name="conv_0")(nn.relu(x), update_stats=train)
    h = SNConv(self.features, 3, 1, sn, pool=self.downsample, name="conv_1")(nn.relu(h), update_stats=train)
    if not self.downsample:
      return x + h
    # A 1x1 conv commutes with average pooling; pooling first is 4x cheaper.
    return h + SNConv(self.features, 1, 1, sn, name="shortcut")(downsample2x(x), update_stats=train)


class ResNetGenerator(nn.Module):
  """z [N,D] (+ labels y [N] when ``num_classes``) -> images [N,H,W,C] in [-1, 1]."""
  out_shape: tuple[int, int, int] = (32, 32, 3)
  width: int = 128
  upsample: str = DEFAULT_UPSAMPLE
  num_classes: Optional[int] = None

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None, train: bool = True) -> jax.Array:
    h, w, c = self.out_shape
    s = num_stages(h, w)
    x = nn.Dense((h >> s) * (w >> s) * self.width, name="dense")(z)
    x = x.reshape(z.shape[0], h >> s, w >> s, self.width)
    for i in range(s):
      x = UpResBlock(self.width, self.upsample, self.num_classes, name=f"block_{i}")(x, y, train)
    x = nn.relu(ConditionalBatchNorm(None, name="bn_out")(x, None, train))
    return jnp.tanh(nn.Conv(c, (3, 3), padding="SAME", name="out")(x))


class ResNetDiscriminator(nn.Module):
  """images [N,H,W,C] -> (logits [N], features [N,h,w,width] of block ``feature_layer``); per-sample only."""
  width: int = 128
  spectral_norm: bool = True
  num_classes: Optional[int] = None
  feature_layer: int = -1
  layout: str = "halve"

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None, train: bool = True
               ) -> tuple[jax.Array, jax.Array]:
    halves = d_block_halves(self.layout, x.shape[1], x.shape[2])
    index = check_feature_layer(self.feature_layer, len(halves))
    h = OptimizedDownBlock(self.width, self.spectral_norm, name="block_0")(x, train)
    features = h
    for i in range(1, len(halves)):
      h = DownResBlock(self.width, self.spectral_norm, halves[i], name=f"block_{i}")(h, train)
      if i == index:
        features = h
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    logits = SNDense(1, self.spectral_norm, name="out")(h, update_stats=train)[:, 0]
    return logits + projection(h, y, self.num_classes, self.spectral_norm, train), features
