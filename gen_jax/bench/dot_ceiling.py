"""The matmul-only ceiling of an MLP model's train step (`python -m gen_jax.bench --dot_ceiling`).

An MLP VAE step is its dense layers' matmuls (forward, input gradient, weight gradient of each) plus
elementwise work, random numbers and the optimizer. Timing each of those matmuls alone, at the step's
shapes and with the trainer's compiler options, and adding the times up gives the fastest the step could
possibly run on this machine's matmul kernels: its FLOP/s as a fraction of the 1024^2 matmul peak is a
ceiling for the step's own fraction. On small layers (200 units, 50 latents) the kernels run well below
the large-matmul peak, and this shows by how much.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import jax

from gen_jax.bench.peak import matmul_peak


def mlp_vae_layers(config, data_shape: Sequence[int]) -> list[tuple[int, int, bool]]:
  """(in, out, needs input gradient) of every matmul layer of the MLP VAE of `config` on images of
  `data_shape` (nets/mlp.py layout: encoder hidden layers, the mean and log-variance heads as one product
  of twice the latent width (`nets/layers.gaussian_heads`), decoder hidden layers, output layer)."""
  hidden = [int(h) for h in config.model.hidden]
  latent = int(config.model.latent_dim)
  data_dim = 1
  for d in data_shape:
    data_dim *= int(d)
  enc = [data_dim, *hidden]
  layers = [(a, b, i > 0) for i, (a, b) in enumerate(zip(enc[:-1], enc[1:]))]
  layers += [(hidden[-1], 2 * latent, True)]
  dec = [latent, *hidden[::-1], data_dim]
  layers += [(a, b, True) for a, b in zip(dec[:-1], dec[1:])]
  return layers


def _dots(batch: int, layers: Sequence[tuple[int, int, bool]],
          dtype: str = "float32") -> list[tuple[str, Callable, tuple, float]]:
  key = jax.random.key(0)
  out = []
  for fan_in, fan_out, input_grad in layers:
    x = jax.random.normal(key, (batch, fan_in), dtype)
    w = jax.random.normal(key, (fan_in, fan_out), dtype)
    g = jax.random.normal(key, (batch, fan_out), dtype)
    flops = 2.0 * batch * fan_in * fan_out
    out.append((f"{fan_in}x{fan_out} forward", lambda x, w: x @ w, (x, w), flops))
    out.append((f"{fan_in}x{fan_out} weight grad", lambda x, g: x.T @ g, (x, g), flops))
    if input_grad:
      out.append((f"{fan_in}x{fan_out} input grad", lambda g, w: g @ w.T, (g, w), flops))
  return out


def measure(batch: int, layers: Sequence[tuple[int, int, bool]], compiler_options: dict | None = None,
            rounds: int = 3, calls: int = 10, repeats: int = 5, peak_size: int | None = None,
            dtype: str = "float32") -> dict:
  """Sum of the isolated matmul times against the matmul peak timed in the same round, both timed alike
  (best of `repeats` timings of `calls` back-to-back calls), all in `dtype`; the median round is reported."""
  compiled = [(name, jax.jit(fn, compiler_options=compiler_options).lower(*args).compile(), args, flops)
              for name, fn, args, flops in _dots(batch, layers, dtype)]
  total_flops = sum(c[3] for c in compiled)
  fractions, seconds, peaks = [], [], []
  for _ in range(rounds):
    total = 0.0
    for _, fn, args, _ in compiled:
      jax.block_until_ready(fn(*args))
      best = float("inf")
      for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
          out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / calls)
      total += best
    peak = matmul_peak(peak_size, dtype, calls=calls, repeats=repeats)["gflops_per_s"]
    seconds.append(total)
    peaks.append(peak)
    fractions.append(total_flops / total / 1e9 / peak)
  i = sorted(range(rounds), key=lambda r: fractions[r])[rounds // 2]
  return {"batch": batch, "num_matmuls": len(compiled), "flops": total_flops, "matmul_seconds": seconds[i],
          "gflops_per_s": total_flops / seconds[i] / 1e9, "peak_gflops_per_s": peaks[i],
          "fraction_of_peak": fractions[i], "rounds_fraction_of_peak": fractions,
          "dtype": dtype,
          "protocol": (f"each of the step's {len(compiled)} {dtype} matmuls jitted alone at batch {batch} with the "
                       f"trainer's compiler options, best of {repeats} timings of {calls} calls, times added "
                       f"up; against the matmul peak timed the same way right after; median of "
                       f"{rounds} rounds")}
