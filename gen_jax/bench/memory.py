"""Evaluation memory: the importance-sampled NLL (gen_jax.eval.groups.likelihood) runs in bounded memory for any k.

For each k the chunked estimator (config.eval.chunk_size samples per lax.scan step) and, for contrast, the
same estimator with one chunk of all k samples are compiled for one batch of test images; XLA's static
memory analysis gives their temporary bytes. The chunked estimator is also run, for its throughput.
"""
from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp

from gen_jax.bench.runner import memory_report
from gen_jax.errors import ConfigError
from gen_jax.eval.groups.likelihood import importance_sampled_log_likelihood
from gen_jax.train import loop


def _nll_fn(family, num_samples: int, chunk_size: int):
  def fn(params, x, key):
    return importance_sampled_log_likelihood(family.encode_fn(params), family.decode_fn(params), family.likelihood,
                                             x, None, key, num_samples=num_samples, chunk_size=chunk_size)
  return jax.jit(fn)


def eval_memory_rows(config, name: str, ks: Sequence[int] = (500, 5000), eval_batch: int = 50,
                     timed_calls: int = 1) -> list[dict]:
  """One row per k: images/s of the chunked estimator and the temp bytes with and without chunking."""
  if config.model.family != "vae":
    raise ConfigError(f"the evaluation-memory rows need a VAE config (model.family='vae'), got "
                      f"{config.model.family!r}; use --eval_memory_config=mlp_vae")
  run = loop.setup(config)
  family = run.family
  params = run.init_state().models["vae"].params
  x = run.sampler.to_model_input(jnp.asarray(run.dataset.test.images[:eval_batch]), jax.random.key(1))
  key = jax.random.key(2)
  chunk = int(config.eval.chunk_size)
  rows = []
  for k in ks:
    chunked = _nll_fn(family, int(k), chunk).lower(params, x, key).compile()
    full = _nll_fn(family, int(k), int(k)).lower(params, x, key).compile()
    mem_chunked, mem_full = memory_report(chunked), memory_report(full)
    jax.block_until_ready(chunked(params, x, key))
    start = time.perf_counter()
    for _ in range(timed_calls):
      out = chunked(params, x, key)
    jax.block_until_ready(out)
    seconds = (time.perf_counter() - start) / timed_calls
    rows.append({
        "config": name, "kind": "eval_nll", "k": int(k), "chunk_size": chunk, "eval_batch": int(x.shape[0]),
        "images_per_s": x.shape[0] / seconds, "seconds_per_batch": seconds,
        "temp_bytes_chunked": mem_chunked["compiled"]["temp"], "temp_bytes_one_chunk": mem_full["compiled"]["temp"],
        "memory": mem_chunked,
        "protocol": f"importance-sampled log p(x) (gen_jax.eval.groups.likelihood), k={k}, chunk_size={chunk}, "
                    f"{x.shape[0]} binarized MNIST test images, untrained parameters (init seed "
                    f"{int(config.seed)}), 1 warm-up + {timed_calls} timed call(s)",
    })
  return rows
