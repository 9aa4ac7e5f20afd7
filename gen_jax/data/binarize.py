"""Dynamic binarization of uint8 images inside the compiled train step: x ~ Bernoulli(pixel / 255).

The random numbers are the train step's largest non-matrix cost on an MLP VAE (784 draws per image), so
they are made cheap without changing what is drawn in distribution:

- 16 bits per pixel instead of 32: pixel k in 0..255 is 1 when a uniform 16-bit integer u is below
  t(k) = round(k * 65536 / 255), so P(1) = t(k) / 65536, within 7.7e-6 of k / 255 (exactly 0 for k = 0 and
  exactly 1 for k = 255). One 32-bit word gives two pixels.
- The words come from `threefry.uniform_uint16`: JAX's Threefry-2x32 hash, unrolled (gen_jax/threefry.py).
- Computed on flattened rows [N, H*W*C], never on [N, H, W, C], where XLA:CPU's loops got slower index
  arithmetic (and the per-pixel loop once absorbed the hash).

What each saved per step: NOTES.md ("Measurements moved from docstrings"); `python -m gen_jax.bench` measures it.
"""
from __future__ import annotations

import numpy as np

import jax
import jax.numpy as jnp

from gen_jax.threefry import uniform_uint16


def thresholds(images_uint8: jax.Array) -> jax.Array:
  """t(k) = round(k * 65536 / 255) = 257 k + [k >= 128], as uint32."""
  k = images_uint8.astype(jnp.uint32)
  return k * np.uint32(257) + (k >= 128).astype(jnp.uint32)


def dynamic_binarize(key: jax.Array, images_uint8: jax.Array) -> jax.Array:
  """float32 {0, 1} images with P(1) = round(pixel * 65536 / 255) / 65536 per pixel, independently."""
  flat = images_uint8.reshape(images_uint8.shape[0], -1)
  bits = uniform_uint16(key, flat.shape) < thresholds(flat)
  return bits.astype(jnp.float32).reshape(images_uint8.shape)
