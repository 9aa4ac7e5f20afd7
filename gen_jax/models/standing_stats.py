"""Batch-norm statistics that belong to the weights being sampled ("standing statistics", Brock et al. 2019).

A generator's running batch-norm averages are accumulated by the raw weights during training; the EMA weights
never ran in train mode, so sampling them with those averages normalizes their activations with another
network's statistics. `recompute_batch_stats` runs the network in train mode on a fixed set of prior draws
and replaces every 'batch_stats' mean / var by the exact mean and (biased) variance of its input over all draws
(combined over chunks through E[x] and E[x^2]); other collections (spectral-norm vectors) are kept as they are.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

BATCH_STATS = "batch_stats"
NUM_DRAWS = 2048     # prior draws the statistics are computed on
CHUNK = 256          # draws per forward pass


def has_batch_stats(collections: Any) -> bool:
  return bool(collections) and bool(jax.tree.leaves((collections or {}).get(BATCH_STATS)))


def recompute_batch_stats(apply_train: Callable[[Any, jax.Array, jax.Array], Any], collections: dict,
                          draw: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]], key: jax.Array,
                          num_draws: int = NUM_DRAWS, chunk: int = CHUNK) -> dict:
  """`collections` with every batch-norm mean / var replaced by the statistics of the network's inputs over
  `num_draws` draws.

  apply_train(collections, z, y) -> the collections a train-mode forward pass returns (running averages
  updated once: new = m * old + (1 - m) * batch statistic, whatever the layer's momentum m).
  draw(key, n) -> (z, y): the network's inputs for one chunk (prior latents and labels).
  The chunk's statistic is read back exactly by running from old = 0 and from old = 1 (m = new_1 - new_0).
  Pure and jittable; the same key gives the same statistics.
  """
  stats = collections[BATCH_STATS]
  zeros = jax.tree.map(jnp.zeros_like, stats)
  ones = jax.tree.map(jnp.ones_like, stats)
  num_chunks = max(1, -(-int(num_draws) // int(chunk)))

  def chunk_stats(k):
    z, y = draw(k, int(chunk))
    from_zero = apply_train({**collections, BATCH_STATS: zeros}, z, y)[BATCH_STATS]
    from_one = apply_train({**collections, BATCH_STATS: ones}, z, y)[BATCH_STATS]
    # new_0 = (1 - m) b, new_1 = m + (1 - m) b  =>  b = new_0 / (1 - (new_1 - new_0)) = new_0 / (1 + new_0 - new_1).
    return jax.tree.map(lambda a, b: a / (1.0 + a - b), from_zero, from_one)

  per_chunk = jax.lax.map(chunk_stats, jax.random.split(key, num_chunks))   # leaves [num_chunks, ...]
  return {**collections, BATCH_STATS: _combine(per_chunk)}


def _combine(per_chunk: Any) -> Any:
  """Equal-size chunks' (mean, biased var) -> the statistics of their union, for every {'mean', 'var'} dict."""
  if isinstance(per_chunk, Mapping) and set(per_chunk) == {"mean", "var"}:
    mean = jnp.mean(per_chunk["mean"], axis=0)
    second = jnp.mean(per_chunk["var"] + jnp.square(per_chunk["mean"]), axis=0)
    return {"mean": mean, "var": jnp.maximum(second - jnp.square(mean), 0.0)}
  if isinstance(per_chunk, Mapping):
    return {k: _combine(v) for k, v in per_chunk.items()}
  return jnp.mean(per_chunk, axis=0)
