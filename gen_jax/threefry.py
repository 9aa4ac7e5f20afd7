"""Random numbers for the hot loop of the train step, from an unrolled Threefry-2x32.

The hash is JAX's own generator (Threefry-2x32, 20 rounds; Salmon et al. 2011), bit for bit
(tests/test_threefry.py compares it with `jax.extend.random.threefry_2x32` and the published known
answers), written out unrolled. On CPU, JAX lowers its threefry as a rolled 5-iteration `while` loop
whose carried copies cost more than the hash itself; unrolled, the draws of a train step take a fraction
of the time (numbers: NOTES.md, "Measurements moved from docstrings").

The streams differ from `jax.random`'s (the counters are laid out differently); the distributions are
the same. Every function is a pure function of (key, shape) and of element indices only, so a result
sharded over devices equals the unsharded one.

- `uniform_uint16`: 16-bit uniforms, four per hash, laid out per leading index (dynamic binarization).
- `bits32`: 32-bit uniform words of any shape, two per hash.
- `normal`: standard normal draws, sqrt(2) erfinv(u) of a uniform u as in `jax.random.normal`.
"""
from __future__ import annotations

import math

import numpy as np

import jax
import jax.numpy as jnp

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(v: jax.Array, distance: int) -> jax.Array:
  return (v << np.uint32(distance)) | (v >> np.uint32(32 - distance))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Threefry-2x32 with 20 rounds of the counter pair (x1, x2) under the key (k1, k2); all uint32."""
  ks = (k1, k2, k1 ^ k2 ^ _KEY_PARITY)
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x1 = x1 + x2
      x2 = x1 ^ _rotate_left(x2, r)
    x1 = x1 + ks[(i + 1) % 3]
    x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x1, x2


def _key_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  data = data.astype(jnp.uint32).reshape(-1)
  return data[0], data[1]


def uniform_uint16(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Independent uniform integers in [0, 65536) of `shape` (as uint32), from a typed or raw jax.random key.

  Laid out per leading index (each row hashes its own counters), so a batch-sharded result is computed
  shard by shard. Row r hashes the counter pairs (r * 2L + j, r * 2L + L + j), j < L = ceil(row size / 4),
  into words a_j, b_j; the flattened row is [a_0 low, a_0 high, a_1 low, ..., a_{L-1} high, b_0 low, ...,
  b_{L-1} high][:row size]. The words are concatenated and then split into halves by a bitcast: on
  XLA:CPU the concatenation keeps the hash from being fused into (and recomputed by) the per-pixel
  consumer, which a stack or a shift-and-mask per pixel did not.
  """
  k1, k2 = _key_words(key)
  rows, per_row = shape[0], int(np.prod(shape[1:]))
  lane = (per_row + 3) // 4
  counter = jax.lax.iota(jnp.uint32, rows)[:, None] * np.uint32(2 * lane) + jax.lax.iota(jnp.uint32, lane)[None, :]
  a, b = threefry2x32(k1, k2, counter, counter + np.uint32(lane))
  halves = jax.lax.bitcast_convert_type(jnp.concatenate([a, b], axis=1), jnp.uint16).reshape(rows, 4 * lane)
  return halves[:, :per_row].astype(jnp.uint32).reshape(shape)


def bits32(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Independent uniform uint32 words of `shape`: element i of the flattened array is a_i for i < H and
  b_(i-H) after, where (a_j, b_j) is the hash of the counter pair (j, H + j), H = ceil(size / 2)."""
  k1, k2 = _key_words(key)
  size = int(np.prod(shape))
  half = (size + 1) // 2
  counter = jax.lax.iota(jnp.uint32, half)
  a, b = threefry2x32(k1, k2, counter, counter + np.uint32(half))
  return jnp.concatenate([a, b])[:size].reshape(shape)


def normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  """Standard normal draws of `shape`: sqrt(2) erfinv(u), u uniform on [nextafter(-1, 0), 1) with 23
  random mantissa bits, the transform of `jax.random.normal` (computed in float32, cast to `dtype`)."""
  mantissa = (bits32(key, shape) >> np.uint32(9)) | np.uint32(0x3F800000)
  unit = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)    # [0, 1)
  low = np.nextafter(np.float32(-1.0), np.float32(0.0))
  u = jnp.maximum(low, unit * (np.float32(1.0) - low) + low)
  return (np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(u)).astype(dtype)
