"""A/B of the image-layer convolutions: `python -m gen_jax.bench.image_layers --configs=dcgan,vaegan,conv_vae`.

Compiles each config's train step twice in one process: with the image layers as nn.Conv (XLA's convolution
kernels; `nets.layers.SMALL_INPUT_CHANNELS` and `FEW_OUTPUT_CHANNELS` set to 0 while tracing) and as the
default matmul forms (`SmallInputConv`, `FewChannelConv`: the same functions and parameters), then times them
in alternating rounds and prints the median of the per-round speed ratios with every round's value.
"""
from __future__ import annotations

import argparse
import sys

from gen_jax.bench import runner, timing
from gen_jax.nets import layers as nets_layers


def build(config, as_conv: bool) -> runner.JaxBench:
  saved = nets_layers.SMALL_INPUT_CHANNELS, nets_layers.FEW_OUTPUT_CHANNELS
  if as_conv:
    nets_layers.SMALL_INPUT_CHANNELS = nets_layers.FEW_OUTPUT_CHANNELS = 0
  try:
    return runner.JaxBench(config)   # traced and compiled here
  finally:
    nets_layers.SMALL_INPUT_CHANNELS, nets_layers.FEW_OUTPUT_CHANNELS = saved


def compare(config, *, repeats: int, min_steps: int, min_seconds: float) -> dict:
  benches = {"nn.Conv": build(config, True), "matmul": build(config, False)}
  times = timing.interleaved(benches, repeats=repeats, min_steps=min_steps, min_seconds=min_seconds)
  a, b = times["matmul"]["rounds_steps_per_s"], times["nn.Conv"]["rounds_steps_per_s"]
  return {"speedup": timing.paired_ratio(a, b), "rounds": timing.round_ratios(a, b),
          "steps_per_s": {name: t["steps_per_s"] for name, t in times.items()}}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m gen_jax.bench.image_layers", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--configs", default="dcgan,vaegan,conv_vae")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--min_steps", type=int, default=4)
  p.add_argument("--min_seconds", type=float, default=1.0)
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  for spec in runner.parse_specs(args.configs):
    r = compare(runner.build_config(spec, args.set), repeats=args.repeats, min_steps=args.min_steps,
                min_seconds=args.min_seconds)
    print(f"{spec.name}: matmul image layers / nn.Conv = {r['speedup']:.3f} (rounds "
          f"{', '.join(f'{x:.2f}' for x in r['rounds'])}; steps/s {r['steps_per_s']})", flush=True)
  return 0


if __name__ == "__main__":
  from gen_jax import cli
  cli.main_guard(main)
