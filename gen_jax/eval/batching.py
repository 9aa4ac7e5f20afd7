"""Bounded-memory evaluation: apply a function to a large array in fixed-size batches.

The last batch is zero-padded to the batch size and the padding dropped, so a jitted function is
compiled once whatever the number of examples; results come back to the host batch by batch, so
device memory holds one batch at a time.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np


class Cancelled(Exception):
  """Raised between batches when the caller's `cancel()` returned True (a training run's SIGTERM arrived during an
  evaluation it may abandon)."""


def _check(cancel: Callable[[], bool] | None) -> None:
  if cancel is not None and cancel():
    raise Cancelled()


def map_batches(fn: Callable[..., Any], *arrays, batch_size: int, progress: str | None = None,
                cancel: Callable[[], bool] | None = None) -> Any:
  """fn(*batch_arrays) -> pytree of arrays with leading axis = batch; concatenated over all batches (numpy).

  ``arrays`` share their leading axis N (None entries are passed through as None). ``progress``: a tqdm
  description, or None for no bar. ``cancel``: asked before each batch; True raises Cancelled.
  """
  present = [a for a in arrays if a is not None]
  if not present:
    raise ValueError("map_batches needs at least one array")
  n = int(np.shape(present[0])[0])
  if n == 0:
    raise ValueError("map_batches got an empty array")
  if any(int(np.shape(a)[0]) != n for a in present):
    raise ValueError(f"map_batches: arrays disagree on their leading axis: {[np.shape(a) for a in present]}")
  batch_size = max(1, min(int(batch_size), n))
  starts = range(0, n, batch_size)
  if progress:
    from tqdm.auto import tqdm
    starts = tqdm(starts, desc=progress, unit="batch", leave=False)
  outputs = []
  for start in starts:
    _check(cancel)
    stop = min(start + batch_size, n)
    batch = [None if a is None else _pad(np.asarray(a[start:stop]), batch_size) for a in arrays]
    out = jax.device_get(fn(*batch))
    outputs.append(jax.tree.map(lambda v, k=stop - start: np.asarray(v)[:k], out))
  return jax.tree.map(lambda *vs: np.concatenate(vs, axis=0), *outputs)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
  if a.shape[0] == size:
    return a
  pad = np.zeros((size - a.shape[0],) + a.shape[1:], a.dtype)
  return np.concatenate([a, pad], axis=0)


def generate(sample_fn: Callable[..., Any], key: jax.Array, num: int, batch_size: int,
             progress: str | None = None, labels: np.ndarray | None = None,
             cancel: Callable[[], bool] | None = None) -> np.ndarray:
  """``num`` samples drawn as ceil(num / batch_size) calls of sample_fn(fold_in(key, i), batch_size), on the host.
  With `labels` (a conditional model's class per sample, at least ceil(num / batch_size) * batch_size of them),
  call i is sample_fn(fold_in(key, i), batch_size, labels[i * batch_size:(i + 1) * batch_size]).
  ``cancel``: asked before each call; True raises Cancelled."""
  if num < 1:
    raise ValueError(f"need at least one sample, got {num}")
  batch_size = max(1, min(int(batch_size), num))
  calls = -(-num // batch_size)
  if labels is not None and len(labels) < calls * batch_size:
    raise ValueError(f"{len(labels)} labels for {calls} calls of {batch_size} samples: need {calls * batch_size}")
  chunks = range(calls)
  if progress:
    from tqdm.auto import tqdm
    chunks = tqdm(chunks, desc=progress, unit="batch", leave=False)

  def call(i):
    _check(cancel)
    k = jax.random.fold_in(key, i)
    if labels is None:
      return sample_fn(k, batch_size)
    return sample_fn(k, batch_size, labels[i * batch_size:(i + 1) * batch_size])

  out = [np.asarray(jax.device_get(call(i))) for i in chunks]
  return np.concatenate(out, axis=0)[:num]
