"""The machine's measured matmul peak and FLOP counts from XLA's cost analysis.

The peak is what a jitted matmul of a size that saturates the machine achieves, best of several
timed calls (so a shared, noisy machine under-reports it at worst; the benchmark measures it more than once
in a run and divides by the largest value seen, which can only lower the reported fraction of peak).
The peak is timed in the dtype the models compute in (`peak_dtype`): a bfloat16 mixed-precision step is
measured against the bfloat16 matmul peak (tensor cores on a GPU), a float32 step against float32.
FLOPs of a step are XLA's own count (`Compiled.cost_analysis()['flops']`, 2*M*N*K for a matmul).
"""
from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp

# Square matmul sizes that saturate each backend (CPU: 2 GFLOP per call, ~10 ms on 2 cores).
DEFAULT_SIZES = {"cpu": 1024, "gpu": 8192, "tpu": 8192}


def peak_dtype(compute_dtype: str | None, override: str | None = None) -> str:
  """The dtype of the peak matmul for steps computing in `compute_dtype` (`override` wins when given)."""
  return str(override or compute_dtype or "float32")


def compiled_flops(compiled: Any) -> float:
  """FLOPs of one call of a compiled XLA computation (cost_analysis is a dict, or a list of one per program)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis or "flops" not in analysis:
    return float("nan")
  return float(analysis["flops"])


def matmul_peak(size: int | None = None, dtype: str = "float32", calls: int = 10, repeats: int = 5) -> dict:
  """Best FLOP/s of a jitted [size, size] @ [size, size] matmul over `repeats` timings of `calls` calls each."""
  size = int(size or DEFAULT_SIZES.get(jax.default_backend(), 1024))
  a = jnp.ones((size, size), dtype) / size
  b = jnp.ones((size, size), dtype)
  compiled = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
  flops = compiled_flops(compiled)
  jax.block_until_ready(compiled(a, b))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = compiled(a, b)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / calls)
  return {"gflops_per_s": flops / best / 1e9, "size": size, "dtype": dtype, "flops_per_call": flops,
          "best_call_s": best, "protocol": f"jit({size}x{size} @ {size}x{size}, {dtype}), best of {repeats} "
                                           f"timings of {calls} calls"}


class PeakTracker:
  """Measures the matmul peak on demand and keeps the largest value seen in this run."""

  def __init__(self, size: int | None = None, enabled: bool = True, dtype: str = "float32"):
    self.size = size
    self.enabled = enabled
    self.dtype = dtype
    self.samples: list[float] = []
    self.last: dict | None = None

  def measure(self) -> float:
    if not self.enabled:
      return float("nan")
    self.last = matmul_peak(self.size, self.dtype)
    self.samples.append(self.last["gflops_per_s"])
    return self.last["gflops_per_s"]

  @property
  def best(self) -> float:
    return max(self.samples) if self.samples else float("nan")

  def summary(self) -> dict:
    return {"gflops_per_s": self.best, "samples_gflops_per_s": [round(s, 2) for s in self.samples],
            "dtype": self.dtype, "protocol": self.last["protocol"] if self.last else "not measured (--no_peak)"}


class MatmulBench:
  """The peak matmul as a timing candidate (`timing.interleaved`): measured in the same rounds as a model,
  so that model FLOP/s and peak FLOP/s of a round see the same machine load."""
  steps_per_call = 1

  def __init__(self, size: int | None = None, dtype: str = "float32"):
    self.size = int(size or DEFAULT_SIZES.get(jax.default_backend(), 1024))
    self.a = jnp.ones((self.size, self.size), dtype) / self.size
    self.b = jnp.ones((self.size, self.size), dtype)
    self.compiled = jax.jit(lambda a, b: a @ b).lower(self.a, self.b).compile()
    self.flops_per_step = compiled_flops(self.compiled)

  def call(self, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      out = self.compiled(self.a, self.b)
    jax.block_until_ready(out)
    return time.perf_counter() - start
