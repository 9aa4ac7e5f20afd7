"""GAN building blocks: spectrally normalized layers, conditional batch norm, pooling, stage counts.

- Spectral normalization (Miyato et al. 2018, "Spectral Normalization for GANs"): ``flax.linen.SpectralNorm``
  divides each weight by its largest singular value, estimated by one power-iteration step per call whose
  vector ``u`` lives in the 'batch_stats' collection (updated only when ``update_stats=True``). A conv
  kernel [kh, kw, cin, cout] is treated as the [kh*kw*cin, cout] matrix (the paper's convention).
- Conditional batch norm (de Vries et al. 2017; Miyato & Koyama 2018): batch norm without its own affine
  transform, followed by a per-class scale (init 1) and shift (init 0) looked up from embeddings.
"""
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from gen_jax.errors import ConfigError
from gen_jax.nets import layers as nets_layers
from gen_jax.nets.layers import ConvAvgPool, SmallInputConv

BASE_SIZES = (4, 7)  # Allowed low-resolution side lengths: 4 (32, 64, ...) or 7 (28, 56, ...).
BN_MOMENTUM = 0.9  # Running-average momentum of generator batch norm (0.1 in PyTorch terms, as SNGAN/BigGAN).


def num_stages(height: int, width: Optional[int] = None) -> int:
  """Number S of 2x stages so that height / 2**S is 4 or 7 (28 -> 2, 32 -> 3, 64 -> 4), else ConfigError."""
  h = int(height)
  w = h if width is None else int(width)
  s = 1
  while h % (2 ** s) == 0 and h // (2 ** s) >= min(BASE_SIZES):
    if h // (2 ** s) in BASE_SIZES and w % (2 ** s) == 0:
      return s
    s += 1
  raise ConfigError(
    f"image size {h}x{w} is not supported by the GAN archs (config.model.arch): the height must be 4 or 7 "
    f"times a power of two (e.g. 28, 32, 64) and the width divisible by the same power of two. Fix: resize the "
    f"images to such a size (e.g. 28x28, 32x32 or 64x64), or train a VAE, which takes other sizes and grey or "
    f"colour pixels: configs/vae.py:conv,folder (sides divisible by 4) or configs/vae.py:mlp,folder (any size)")


def downsample2x(x: jax.Array) -> jax.Array:
  """2x2 average pooling with stride 2: [N,H,W,C] -> [N,H/2,W/2,C]."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


def maybe_sn(layer: nn.Module, enabled: bool, name: Optional[str] = None) -> Callable[..., jax.Array]:
  """``f(x, update_stats=...)`` applying ``layer``, spectrally normalized when ``enabled``.

  Call inside an ``nn.compact`` method; the SpectralNorm wrapper (holding ``u`` and ``sigma`` in
  'batch_stats') is named ``name`` in the calling module.
  """
  if not enabled:
    return lambda *args, update_stats=False, **kwargs: layer(*args, **kwargs)
  wrapped = nn.SpectralNorm(layer, name=name)
  return lambda *args, update_stats=False, **kwargs: wrapped(*args, update_stats=update_stats, **kwargs)


class SNDense(nn.Module):
  """``nn.Dense`` with optional spectral normalization (Miyato et al. 2018). Params under 'dense'."""
  features: int
  spectral_norm: bool = True
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
    layer = nn.Dense(self.features, use_bias=self.use_bias, name="dense")
    return maybe_sn(layer, self.spectral_norm, name="sn")(x, update_stats=update_stats)


class SNConv(nn.Module):
  """``nn.Conv`` (SAME padding) with optional spectral normalization of the reshaped [kh*kw*cin, cout] kernel.

  ``pool=True`` appends 2x2 average pooling, computed as one stride-2 convolution (`layers.ConvAvgPool`;
  same parameters, so the spectral norm is that of the k x k kernel).
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  spectral_norm: bool = True
  use_bias: bool = True
  pool: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
    k, s = self.kernel_size, self.strides
    if self.pool:
      if s != 1:
        raise ValueError("SNConv: pool=True needs strides=1 (the pooling is the stride)")
      layer = ConvAvgPool(self.features, k, self.use_bias, name="conv")
    elif s > 1 and x.shape[-1] <= nets_layers.SMALL_INPUT_CHANNELS:   # image layer: the same conv, as a matmul
      layer = SmallInputConv(self.features, k, s, self.use_bias, name="conv")
    else:
      layer = nn.Conv(self.features, (k, k), strides=(s, s), padding="SAME", use_bias=self.use_bias, name="conv")
    return maybe_sn(layer, self.spectral_norm, name="sn")(x, update_stats=update_stats)


class SNEmbed(nn.Module):
  """``nn.Embed`` (class embedding for the projection discriminator) with optional spectral normalization."""
  num_embeddings: int
  features: int
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, y: jax.Array, update_stats: bool = False) -> jax.Array:
    layer = nn.Embed(self.num_embeddings, self.features, name="embed")
    return maybe_sn(layer, self.spectral_norm, name="sn")(y, update_stats=update_stats)


def projection(h: jax.Array, y: Optional[jax.Array], num_classes: Optional[int], spectral_norm: bool,
               update_stats: bool) -> jax.Array:
  """Projection-discriminator term sum(embed(y) * h, -1) [N] (Miyato & Koyama 2018); 0 when unconditional.

  Call inside an ``nn.compact`` method: creates the embedding submodule 'embed_y'.
  """
  if num_classes is None:
    return jnp.zeros(h.shape[:1], h.dtype)
  if y is None:
    raise ValueError(f"this discriminator is conditional on {num_classes} classes: pass labels y (int [N])")
  e = SNEmbed(num_classes, h.shape[-1], spectral_norm, name="embed_y")(y, update_stats=update_stats)
  return jnp.sum(e * h, axis=-1)


class ConditionalBatchNorm(nn.Module):
  """Batch norm, then per-class scale gamma[y] (init 1) and shift beta[y] (init 0) (de Vries et al. 2017).

  ``num_classes=None`` gives ordinary batch norm (one learned scale/shift for all samples; ``y`` ignored).
  Statistics: batch statistics when ``train`` (running averages updated in 'batch_stats'), else the
  running averages.
  """
  num_classes: Optional[int] = None
  momentum: float = BN_MOMENTUM
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None, train: bool = True) -> jax.Array:
    x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.epsilon,
                     use_bias=False, use_scale=False, name="bn")(x)
    c = x.shape[-1]
    if self.num_classes is None:
      gamma = self.param("scale", nn.initializers.ones, (c,))
      beta = self.param("bias", nn.initializers.zeros, (c,))
    else:
      if y is None:
        raise ValueError(f"ConditionalBatchNorm is conditional on {self.num_classes} classes: pass labels y")
      gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones, name="gamma")(y)
      beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros, name="beta")(y)
      bshape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
      gamma, beta = gamma.reshape(bshape), beta.reshape(bshape)
    return x * gamma + beta


def check_feature_layer(feature_layer: Any, num_layers: int) -> int:
  """Non-negative index of ``feature_layer`` in [-num_layers, num_layers), else ConfigError."""
  if isinstance(feature_layer, bool) or not isinstance(feature_layer, (int, np.integer)) or not (
      -num_layers <= int(feature_layer) < num_layers):
    raise ConfigError(
      f"config.model.feature_layer={feature_layer!r} is out of range: this discriminator has {num_layers} "
      f"blocks, so use an int in [{-num_layers}, {num_layers - 1}] (-1 = last)")
  return int(feature_layer) % num_layers


def spectral_norm_estimate(kernel: jax.Array | np.ndarray) -> float:
  """Largest singular value of ``kernel`` reshaped to [-1, out] (the matrix SpectralNorm normalizes)."""
  k = np.asarray(kernel, np.float64)
  return float(np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0])

