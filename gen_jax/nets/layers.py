"""Shared building blocks: activations and 2x upsampling.

Upsampling methods (``Upsample2x.method``):
  - 'pixel_shuffle': conv to 4*F channels at low resolution, then depth-to-space (sub-pixel conv).
  - 'nearest': nearest-neighbour x2, then a conv to F channels -- computed at the input resolution by
    `nearest_upsample_conv` (four small convolutions, one per output phase; the same function and
    parameters as upsampling then convolving, with 2.25x fewer multiply-adds for a 3x3 kernel).
  - 'transpose': ``nn.ConvTranspose`` with stride 2.

'nearest' is the default: the fastest of the three on CPU (NOTES.md, "Measurements moved from docstrings"),
the parameter count of a transposed conv (pixel shuffle has 4x the weights), and free of checkerboard
artifacts (Odena et al. 2016). `python -m gen_jax.nets.measure_upsampling` measures them.
"""
import functools
import operator
from typing import Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.errors import ConfigError

UPSAMPLE_METHODS = ("pixel_shuffle", "nearest", "transpose")
DEFAULT_UPSAMPLE = "nearest"

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "relu": nn.relu,
  "leaky_relu": functools.partial(nn.leaky_relu, negative_slope=0.2),
  "tanh": jnp.tanh,
  "elu": nn.elu,
  "gelu": nn.gelu,
  "swish": nn.swish,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Activation function by name ('leaky_relu' uses slope 0.2)."""
  try:
    return ACTIVATIONS[name]
  except (KeyError, TypeError):
    raise ConfigError(
      f"config.model.activation={name!r} is unknown; valid names: {', '.join(sorted(ACTIVATIONS))}") from None


def check_upsample_method(method: str) -> str:
  """Return ``method`` if valid, else raise ConfigError naming config.model.upsample."""
  if method not in UPSAMPLE_METHODS:
    raise ConfigError(
      f"config.model.upsample={method!r} is unknown; valid methods: {', '.join(UPSAMPLE_METHODS)}")
  return method


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
  """[N,H,W,C*b*b] -> [N,H*b,W*b,C]; channel index = (i*b + j)*C + c (TF ``depth_to_space`` order)."""
  n, h, w, cin = x.shape
  if cin % (block * block):
    raise ValueError(f"depth_to_space: channels {cin} not divisible by block^2={block * block}")
  c = cin // (block * block)
  x = x.reshape(n, h, w, block, block, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * block, w * block, c)


def nearest_upsample2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling [N,H,W,C] -> [N,2H,2W,C] via broadcast + reshape."""
  n, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
  return x.reshape(n, 2 * h, 2 * w, c)


def _phase_taps(kernel_size: int, phase: int) -> tuple[int, list[list[int]]]:
  """For output rows 2i + phase of nearest-x2 then a SAME conv of `kernel_size` taps: the first low-res offset
  and, per low-res offset o = first, first + 1, ..., the kernel taps that land on input row i + o."""
  before = (kernel_size - 1) // 2  # XLA's SAME padding puts the extra pad of an even kernel after
  offsets = [(phase + d - before) // 2 for d in range(kernel_size)]
  first = min(offsets)
  groups = [[] for _ in range(max(offsets) - first + 1)]
  for d, o in enumerate(offsets):
    groups[o - first].append(d)
  return first, groups


def nearest_upsample_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv(nearest_upsample2x(x), kernel) with SAME padding, computed at the input resolution.

  Output pixel (2i + a, 2j + b) only sees input pixels near (i, j): for each of the four phases (a, b) the
  k x k kernel collapses to a smaller one (taps that land on the same input pixel are summed; 2 x 2 for
  k = 3), applied to the low-resolution input, and the four results are interleaved. Same function and
  parameters as the upsample-then-convolve form, 2.25x fewer multiply-adds for k = 3, and no gradient of
  the upsampling (a sum over 2 x 2 blocks) in the backward pass.
  """
  kh, kw = kernel.shape[:2]
  rows = [_phase_taps(kh, a) for a in range(2)]
  cols = [_phase_taps(kw, b) for b in range(2)]
  phases = []
  for first_r, groups_r in rows:
    k_rows = jnp.stack([sum(kernel[d] for d in g) for g in groups_r])  # [r, kw, cin, cout]
    row_out = []
    for first_c, groups_c in cols:
      k_phase = jnp.stack([sum(k_rows[:, d] for d in g) for g in groups_c], axis=1)  # [r, c, cin, cout]
      padding = ((-first_r, first_r + len(groups_r) - 1), (-first_c, first_c + len(groups_c) - 1))
      row_out.append(jax.lax.conv_general_dilated(x, k_phase.astype(x.dtype), (1, 1), padding,
                                                  dimension_numbers=("NHWC", "HWIO", "NHWC")))
    phases.append(jnp.stack(row_out, axis=3))  # [n, h, w, 2 (b), cout]
  y = jnp.stack(phases, axis=2)  # [n, h, 2 (a), w, 2 (b), cout]
  n, h, _, w, _, cout = y.shape
  return y.reshape(n, 2 * h, 2 * w, cout)


class NearestUpsampleConv(nn.Module):
  """nearest x2 upsampling then ``nn.Conv(features, kernel_size, padding='SAME')``, computed by
  `nearest_upsample_conv`. Parameters 'kernel' [k, k, C_in, features] and 'bias' as ``nn.Conv``'s, with its
  initializers, so checkpoints of either form load into the other."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.linear.default_kernel_init, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    return nearest_upsample_conv(x, kernel) + bias


def conv_avg_pool(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """2x2 average pooling (stride 2, VALID) of conv(x, kernel) with SAME padding, as one stride-2 convolution.

  The mirror of `nearest_upsample_conv`: averaging the four outputs of a k x k kernel over a 2 x 2 block is
  one (k+1) x (k+1) kernel (the four shifted copies of the kernel, summed, over 4) applied with stride 2.
  Same function and parameters, 2.25x fewer multiply-adds for k = 3, no pooling gradient.
  """
  kh, kw = kernel.shape[:2]
  combined = sum(jnp.pad(kernel, ((a, 1 - a), (b, 1 - b), (0, 0), (0, 0))) for a in (0, 1) for b in (0, 1)) / 4
  padding = tuple(((k - 1) // 2, k - (k - 1) // 2 - n % 2) for k, n in ((kh, x.shape[1]), (kw, x.shape[2])))
  return jax.lax.conv_general_dilated(x, combined.astype(x.dtype), (2, 2), padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


class ConvAvgPool(nn.Module):
  """``nn.Conv(features, kernel_size, padding='SAME')`` then 2x2 average pooling, computed by `conv_avg_pool`.
  Parameters 'kernel' and 'bias' (when ``use_bias``) as ``nn.Conv``'s, with its initializers."""
  features: int
  kernel_size: int = 3
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.linear.default_kernel_init, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    y = conv_avg_pool(x, kernel)
    return y if bias is None else y + bias


class Upsample2x(nn.Module):
  """Doubles H and W and maps to ``features`` channels (no activation)."""
  features: int
  method: str = DEFAULT_UPSAMPLE
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = (self.kernel_size, self.kernel_size)
    method = check_upsample_method(self.method)
    if method == "pixel_shuffle":
      return depth_to_space(nn.Conv(4 * self.features, k, padding="SAME", name="conv")(x), 2)
    if method == "nearest":
      return NearestUpsampleConv(self.features, self.kernel_size, name="conv")(x)
    return nn.ConvTranspose(self.features, k, strides=(2, 2), padding="SAME", name="conv")(x)


def conv_same_by_taps(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Stride-1 'SAME' convolution (NHWC, HWIO kernel) as one matmul and a sum of shifted slices.

  The same function as `lax.conv_general_dilated(x, kernel, (1, 1), 'SAME')` (summed in another order):
  x [.., Cin] @ kernel [Cin, kh*kw*Cout] gives every tap's contribution at every input pixel, and output pixel
  (i, j) adds tap (a, b)'s contribution from input pixel (i + a - pad, j + b - pad). For a convolution to
  few output channels (a generator's image layer) XLA:CPU's convolution kernels run at a few GFLOP/s; the
  matmul and the fused sum (and their gradients) are faster (NOTES.md, speed entries).
  """
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  taps = x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
  taps = taps.reshape(n, h, w, kh, kw, cout)
  ph, pw = (kh - 1) // 2, (kw - 1) // 2
  taps = jnp.pad(taps, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0), (0, 0), (0, 0)))
  return sum(taps[:, a:a + h, b:b + w, a, b, :] for a in range(kh) for b in range(kw))


class FewChannelConv(nn.Module):
  """``nn.Conv(features, (k, k), padding='SAME')`` (same parameters and initial values) by `conv_same_by_taps`."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    return conv_same_by_taps(x, kernel) + bias


# Image layers: stride-2 convolutions reading at most SMALL_INPUT_CHANNELS channels run as a patches matmul
# (`SmallInputConv`), stride-1 convolutions writing at most FEW_OUTPUT_CHANNELS as a matmul + shifted sum
# (`FewChannelConv`); the same functions and parameters as nn.Conv, faster on XLA:CPU (a stride-1 conv reading
# 1 channel, the SN-ResNet discriminator's first, measured no faster as patches and stays nn.Conv). Read when a
# network is traced, so `gen_jax.bench.image_layers` can set both to 0 to time the nn.Conv form against them.
SMALL_INPUT_CHANNELS = 3
FEW_OUTPUT_CHANNELS = 3


def same_padding(kernel: int, stride: int, size: int) -> tuple[int, int]:
  """XLA's 'SAME' padding (before, after) of one spatial axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_same_by_patches(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """'SAME' convolution (NHWC, HWIO kernel, stride s) as patches [.., kh*kw*Cin] @ kernel [kh*kw*Cin, Cout].

  The same function as `lax.conv_general_dilated(x, kernel, (s, s), 'SAME')`. Meant for inputs with few
  channels (an image layer), where the patches are small and XLA:CPU's convolution kernels are slow; with
  many input channels the patches would be kh*kw times the input.
  """
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  (top, bottom), (left, right) = same_padding(kh, stride, h), same_padding(kw, stride, w)
  oh, ow = -(-h // stride), -(-w // stride)
  xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  cols = [xp[:, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride, :]
          for a in range(kh) for b in range(kw)]
  patches = jnp.stack(cols, axis=3).reshape(n * oh * ow, kh * kw * cin)
  return (patches @ kernel.reshape(kh * kw * cin, cout)).reshape(n, oh, ow, cout)


class SmallInputConv(nn.Module):
  """``nn.Conv(features, (k, k), strides=(s, s), padding='SAME')`` (same parameters) by `conv_same_by_patches`."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    out = conv_same_by_patches(x, kernel, self.strides)
    return out if bias is None else out + bias


class _DenseParams(nn.Module):
  """The kernel [in, out] and bias [out] of an ``nn.Dense(out)`` (same names, initializers and draw order),
  without applying them."""
  in_features: int
  features: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.in_features, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return kernel, bias


def gaussian_heads(h: jax.Array, latent_dim: int) -> tuple[jax.Array, jax.Array]:
  """Features h [N, D] -> (mean, logvar) [N, latent_dim]: two linear heads computed as one matmul.

  Call it inside a module's ``@nn.compact`` method: the parameters are created in that module, exactly
  those of ``nn.Dense(latent_dim, name="mean")`` and ``nn.Dense(latent_dim, name="logvar")`` there (same
  paths, same initial values, so checkpoints are interchangeable), and the two kernels are concatenated
  into one [D, 2 * latent_dim] product, which XLA:CPU runs faster than two narrow ones (NOTES.md,
  "Measurements moved from docstrings").
  """
  mean_kernel, mean_bias = _DenseParams(h.shape[-1], latent_dim, name="mean")()
  logvar_kernel, logvar_bias = _DenseParams(h.shape[-1], latent_dim, name="logvar")()
  kernel = jnp.concatenate([mean_kernel, logvar_kernel], axis=1)
  bias = jnp.concatenate([mean_bias, logvar_bias])
  h, kernel, bias = nn.dtypes.promote_dtype(h, kernel, bias)
  out = h @ kernel + bias
  return out[:, :latent_dim], out[:, latent_dim:]


def positive_int(value, name: str) -> int:
  """`value` as an int >= 1, else ConfigError naming `name` (e.g. 'config.model.latent_dim')."""
  try:
    if isinstance(value, bool):
      raise TypeError
    out = operator.index(value)
  except TypeError:
    out = 0
  if out < 1:
    raise ConfigError(f"{name} must be a positive int, got {value!r}")
  return out
