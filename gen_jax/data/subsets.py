"""Seeded, class-balanced subsets of a split: the one rule for every "n images of a split" the project evaluates on.

Taking the first n images of a split is only fair when the split is shuffled; an image folder's loader orders
images by class, so its first 2000 test images were two classes of ten. `balanced_indices` draws instead:

  n >= the split size      the whole split, in its own order (full-split uses stay full)
  labels given             equal counts per class (n // K each); the n % K extra images go to classes chosen by
                           the seed; a class with too few images gives all it has and the shortfall is spread over
                           the others the same way. Within a class, a seeded draw without replacement.
  no labels                a seeded draw without replacement

The indices come back in a seeded random order (so pairs i, P + i join random images, not neighbours in the
split's order). The draw depends only on (seed, purpose, the labels, n): every model evaluated with the same
seed sees the same images, and two purposes ('reference', 'floor', ...) draw independently. `describe_subset`
is the sentence each evaluation group writes into its protocol.
"""
from __future__ import annotations

import zlib

import numpy as np

from gen_jax.errors import ConfigError


def _rng(seed, purpose: str) -> np.random.Generator:
  """numpy's generator from an int seed (or a sequence of ints, or a JAX key) and a purpose name."""
  import jax
  if isinstance(seed, jax.Array) and jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key):
    seed = jax.random.key_data(seed)
  words = [int(v) & 0xFFFFFFFF for v in np.asarray(seed, np.int64).ravel()]
  return np.random.default_rng(words + [zlib.crc32(str(purpose).encode())])


def balanced_indices(labels_or_n, n: int, seed=0, purpose: str = "") -> np.ndarray:
  """Indices (int64 [min(n, N)]) of a seeded, class-balanced draw of n of a split's N examples (module docstring).

  labels_or_n: the split's labels [N] (ints), or N (an int) for a split without labels. seed: an int, a sequence
  of ints, or a JAX key. purpose: names the use ('reference', 'floor', 'imputation', ...), so that different uses
  of one seed draw independently.
  """
  if isinstance(labels_or_n, (int, np.integer)):
    labels, total = None, int(labels_or_n)
  else:
    labels = None if labels_or_n is None else np.asarray(labels_or_n).ravel()
    total = len(labels)
  n = int(n)
  if n < 0 or total < 0:
    raise ConfigError(f"a subset needs n >= 0 of a split of size >= 0; got n={n} of {total}")
  if n >= total:
    return np.arange(total, dtype=np.int64)
  rng = _rng(seed, purpose)
  if labels is None:
    return rng.permutation(total)[:n].astype(np.int64)
  classes, inverse = np.unique(labels, return_inverse=True)
  members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
  counts = _balanced_counts(np.array([len(m) for m in members]), n, rng)
  picked = [rng.permutation(m)[:k] for m, k in zip(members, counts)]
  return rng.permutation(np.concatenate(picked)).astype(np.int64)


def _balanced_counts(available: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
  """How many of each class: as equal as `available` allows (water filling), extras to seeded random classes."""
  counts = np.zeros(len(available), np.int64)
  open_ = available > 0
  left = n
  while left > 0:
    idx = np.flatnonzero(open_)
    share, extra = divmod(left, len(idx))
    want = np.full(len(idx), share)
    want[rng.permutation(len(idx))[:extra]] += 1
    got = np.minimum(want, available[idx] - counts[idx])
    counts[idx] += got
    left -= int(got.sum())
    open_ = counts < available
  return counts


def matching_indices(labels, target_labels, seed=0, purpose: str = "") -> np.ndarray:
  """Indices (int64) of a seeded draw from a split with `labels` holding as many examples of each class as
  `target_labels` does (the class proportions of another set, e.g. a real-data floor matched to its reference):
  a class with too few examples gives all it has, the shortfall is spread over the others as in
  `balanced_indices`. Within a class a seeded draw without replacement; the indices in a seeded random order."""
  labels = np.asarray(labels).ravel()
  target = np.asarray(target_labels).ravel()
  n = len(target)
  if n >= len(labels):
    return np.arange(len(labels), dtype=np.int64)
  rng = _rng(seed, purpose)
  classes, inverse = np.unique(labels, return_inverse=True)
  members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
  available = np.array([len(m) for m in members])
  want = np.array([int(np.sum(target == c)) for c in classes])
  counts = np.minimum(want, available)
  short = n - int(counts.sum())
  if short > 0:   # target classes missing here or too small: fill from what is left, as evenly as possible
    counts += _balanced_counts(available - counts, short, rng)
  picked = [rng.permutation(m)[:k] for m, k in zip(members, counts)]
  return rng.permutation(np.concatenate(picked)).astype(np.int64)


def subset(split, n: int, seed=0, purpose: str = ""):
  """(indices, images, labels or None) of `balanced_indices` on a split with .images and .labels (or None)."""
  labels = getattr(split, "labels", None)
  idx = balanced_indices(len(split.images) if labels is None else labels, n, seed, purpose)
  return idx, split.images[idx], None if labels is None else np.asarray(labels)[idx]


def describe_subset(n: int, total: int, seed=0, purpose: str = "", labelled: bool = True,
                    what: str = "images") -> str:
  """The protocol's sentence for a draw: e.g. "2000 of 10000 images, class-balanced seeded draw (seed 0, purpose
  'reference')", or "all 10000 images" when the draw is the whole split."""
  n, total = int(n), int(total)
  if n >= total:
    return f"all {total} {what} of the split, in its order"
  kind = "class-balanced seeded draw" if labelled else "seeded uniform draw without replacement"
  seed_text = seed if isinstance(seed, (int, np.integer)) else np.asarray(seed).ravel().tolist()
  return f"{n} of {total} {what}, {kind} (seed {seed_text}, purpose {purpose!r}; gen_jax/data/subsets.py)"
