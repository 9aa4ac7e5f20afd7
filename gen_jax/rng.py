"""Explicit PRNG discipline: one root key per run, derived keys by purpose and step.

root = key(config.seed)
  purpose 'init'       -> parameter initialization
  purpose 'data_order' -> fold_in(., epoch): the permutation of each epoch
  purpose 'train'      -> fold_in(., step): the step key, then split by purpose
                          ('data' for binarization/augmentation, 'update' for the model)
  purpose 'eval', 'visualize' -> evaluation and image grids

Because every step key is `fold_in(train_key, step)`, a run resumed from a
checkpoint at step s draws exactly the numbers an uninterrupted run draws,
and no key is ever used for two purposes.
"""
from __future__ import annotations

import zlib

import jax

_PURPOSE_IDS: dict[str, int] = {}


def purpose_id(name: str) -> int:
  """A stable 31-bit integer for a purpose name (crc32, so it never depends on hash seeds)."""
  if name not in _PURPOSE_IDS:
    _PURPOSE_IDS[name] = zlib.crc32(name.encode()) & 0x7FFFFFFF
  return _PURPOSE_IDS[name]


def root_key(seed: int) -> jax.Array:
  return jax.random.key(seed)


def for_purpose(key: jax.Array, name: str) -> jax.Array:
  """A key for one named purpose, independent of the keys of other purposes."""
  return jax.random.fold_in(key, purpose_id(name))


def for_step(train_key: jax.Array, step) -> jax.Array:
  """The key of training step `step` (traced or concrete)."""
  return jax.random.fold_in(train_key, step)
