"""Time jitted forward+backward of each Upsample2x method: ``python -m gen_jax.nets.measure_upsampling``.

Prints a table of median milliseconds (after warm-up) of ``value_and_grad`` of a sum w.r.t. params and
input, compiled as the trainer compiles its step (cpu_kernels.py). 'nearest' is computed at the input
resolution (`layers.nearest_upsample_conv`); the row 'nearest (upsample, then conv)' is the same function
written the direct way, and 'nearest (jax.image.resize)' the direct way with ``jax.image.resize``.
"""
import argparse
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

from gen_jax.nets.layers import UPSAMPLE_METHODS, Upsample2x, nearest_upsample2x
from gen_jax import cpu_kernels

SHAPES = ((7, 7, 128, 64), (14, 14, 64, 32))  # (H, W, C_in, C_out)


class _ResizeNearest(nn.Module):
  """'nearest' with jax.image.resize instead of broadcast/reshape (for comparison only)."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    x = jax.image.resize(x, (n, 2 * h, 2 * w, c), method="nearest")
    return nn.Conv(self.features, (self.kernel_size,) * 2, padding="SAME")(x)


class _UpsampleThenConv(nn.Module):
  """'nearest' written directly: broadcast/reshape upsampling, then the conv (for comparison only)."""
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Conv(self.features, (self.kernel_size,) * 2, padding="SAME")(nearest_upsample2x(x))


def make_step(module: nn.Module, x: jax.Array) -> Callable[[], object]:
  """A thunk running one jitted value_and_grad(sum(module(x))) w.r.t. (params, x) to completion."""
  params = module.init(jax.random.key(0), x)
  options = cpu_kernels.compiler_options(cpu_kernels.DEFAULT_CPU_CONV_KERNELS, jax.default_backend())
  step = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(module.apply(p, x)), argnums=(0, 1)),
                 compiler_options=options)
  return lambda: jax.block_until_ready(step(params, x))


def measure(batch: int = 64, runs: int = 20, kernel_size: int = 3,
            warmup: int = 3) -> list[tuple[str, list[float]]]:
  """Rows of (method, [median ms per shape in SHAPES]).

  Runs are interleaved round-robin across all candidates so that load from other processes on a
  shared machine hits every method alike.
  """
  candidates = [(m, lambda f, m=m: Upsample2x(f, method=m, kernel_size=kernel_size)) for m in UPSAMPLE_METHODS]
  candidates.append(("nearest (upsample, then conv)", lambda f: _UpsampleThenConv(f, kernel_size)))
  candidates.append(("nearest (jax.image.resize)", lambda f: _ResizeNearest(f, kernel_size)))
  thunks = {}
  for name, make in candidates:
    for i, (h, w, cin, cout) in enumerate(SHAPES):
      x = jax.random.normal(jax.random.key(1), (batch, h, w, cin))
      thunks[name, i] = make_step(make(cout), x)
  for fn in thunks.values():
    for _ in range(warmup):
      fn()
  times = {k: [] for k in thunks}
  for _ in range(runs):
    for k, fn in thunks.items():
      t0 = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t0)
  return [(name, [1e3 * statistics.median(times[name, i]) for i in range(len(SHAPES))])
          for name, _ in candidates]


def format_table(rows: list[tuple[str, list[float]]], batch: int) -> str:
  """Plain-text table, one column per shape."""
  heads = [f"{h}x{w}x{ci}->{2 * h}x{2 * w}x{co}" for h, w, ci, co in SHAPES]
  width = max(len(r[0]) for r in rows)
  lines = [f"{'method (batch ' + str(batch) + ', ms)':<{width + 2}}" + "".join(f"{hd:>22}" for hd in heads)]
  for name, ms in rows:
    lines.append(f"{name:<{width + 2}}" + "".join(f"{v:>22.2f}" for v in ms))
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--runs", type=int, default=20)
  parser.add_argument("--kernel_size", type=int, default=3)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
  print(format_table(measure(args.batch, args.runs, args.kernel_size), args.batch))


if __name__ == "__main__":
  main()
