"""DCGAN generator / discriminator (Radford et al. 2016), with optional SN and class conditioning.

Generator: dense z -> [H/2^S, W/2^S, width*2^(S-1)] (S = 2 for 28x28, 3 for 32x32, 4 for 64x64), BN + ReLU,
then S Upsample2x stages halving the channels, each + BN + ReLU, then a 3x3 conv to C and tanh. With
``num_classes`` every batch norm is conditional (de Vries et al. 2017; Miyato & Koyama 2018).
For 28x28 and width 64: 7x7x128 -> 14x14x64 -> 28x28x32 -> 28x28xC.

Discriminator: S stride-2 convs (4x4 by default) with widths width*2^i and leaky ReLU 0.2, no normalization
(optionally spectral normalization, Miyato et al. 2018), flatten, dense to one logit (+ projection term
<embed(y), h> on the flattened features h when conditional, Miyato & Koyama 2018).
"""
from typing import Optional

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.nets.gan_layers import ConditionalBatchNorm, SNConv, SNDense, check_feature_layer, num_stages, projection
from gen_jax.nets import layers as nets_layers
from gen_jax.nets.layers import DEFAULT_UPSAMPLE, FewChannelConv, Upsample2x


class DCGANGenerator(nn.Module):
  """z [N,D] (+ labels y [N] when ``num_classes``) -> images [N,H,W,C] in [-1, 1]."""
  out_shape: tuple[int, int, int] = (28, 28, 1)
  width: int = 64
  upsample: str = DEFAULT_UPSAMPLE
  num_classes: Optional[int] = None

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None, train: bool = True) -> jax.Array:
    h, w, c = self.out_shape
    s = num_stages(h, w)
    channels = self.width * 2 ** (s - 1)
    x = nn.Dense((h >> s) * (w >> s) * channels, use_bias=False, name="dense")(z)
    x = x.reshape(z.shape[0], h >> s, w >> s, channels)
    x = nn.relu(ConditionalBatchNorm(self.num_classes, name="bn_0")(x, y, train))
    for i in range(s):
      channels = max(1, channels // 2)
      x = Upsample2x(channels, self.upsample, name=f"up_{i}")(x)
      x = nn.relu(ConditionalBatchNorm(self.num_classes, name=f"bn_{i + 1}")(x, y, train))
    # The image layer has 1-3 output channels: the same conv computed as a matmul + shifted sum (faster on CPU).
    few = c <= nets_layers.FEW_OUTPUT_CHANNELS
    out = FewChannelConv(c, 3, name="out") if few else nn.Conv(c, (3, 3), padding="SAME", name="out")
    return jnp.tanh(out(x))


class DCGANDiscriminator(nn.Module):
  """images [N,H,W,C] -> (logits [N], features [N,h,w,c] of conv ``feature_layer``); per-sample only."""
  width: int = 64
  spectral_norm: bool = False
  num_classes: Optional[int] = None
  feature_layer: int = -1
  kernel_size: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None, train: bool = True
               ) -> tuple[jax.Array, jax.Array]:
    s = num_stages(x.shape[1], x.shape[2])
    index = check_feature_layer(self.feature_layer, s)
    h, features = x, x
    for i in range(s):
      conv = SNConv(self.width * 2 ** i, self.kernel_size, 2, self.spectral_norm, name=f"conv_{i}")
      h = nn.leaky_relu(conv(h, update_stats=train), negative_slope=0.2)
      if i == index:
        features = h
    h = h.reshape(h.shape[0], -1)
    logits = SNDense(1, self.spectral_norm, name="out")(h, update_stats=train)[:, 0]
    return logits + projection(h, y, self.num_classes, self.spectral_norm, train), features
