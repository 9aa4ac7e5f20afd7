"""Where a train step's time goes: `python -m gen_jax.bench.step_profile --configs=dcgan [--steps=6]`.

Traces a few compiled train steps with jax.profiler, sums each HLO op's time on XLA's worker threads (the
thunk events of XLA:CPU) and prints it by op kind (fusion type, convolution variant), by network layer (from
the ops' metadata: 'bwd' for the transposed/gradient ops) and the top ops with their output shapes. On a shared
machine only the shares mean something; compare variants with alternating rounds in one process instead.
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import re
import sys
import tempfile

import jax



def hlo_ops(hlo_text: str) -> dict[str, tuple[str, str]]:
  """HLO instruction name -> (output shape, metadata op_name or '')."""
  out = {}
  for line in hlo_text.splitlines():
    m = re.match(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) ", line)
    if m:
      op = re.search(r"op_name=\"([^\"]+)\"", line)
      out.setdefault(m.group(1), (m.group(2), op.group(1) if op else ""))
  return out


def op_times(trace_dir: str) -> collections.Counter:
  """Nanoseconds per op name, summed over XLA's worker threads (thunk-executor bookkeeping left out)."""
  path = sorted(pathlib.Path(trace_dir).rglob("*.xplane.pb"))[-1]
  data = jax.profiler.ProfileData.from_file(str(path))
  times: collections.Counter = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_XLAEigen"):
        continue
      for event in line.events:
        if not event.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
          times[event.name] += event.duration_ns
  return times


def layer_of(op_name: str) -> str:
  """'fwd'/'bwd' + the Flax module path of an op's metadata (e.g. 'bwd DCGANDiscriminator/conv_1')."""
  kind = "bwd" if "transpose(" in op_name else "fwd"
  m = re.search(r"([A-Z][\w.]+)\)*/(\w+)", op_name)
  return f"{kind} {m.group(1)}/{m.group(2)}" if m else f"{kind} (no module: layout copies, optimizer, ...)"


def summarize(times: collections.Counter, ops: dict[str, tuple[str, str]], steps: int, top: int = 15) -> str:
  """Only events named after an HLO instruction count (waits, rendezvous and async markers are left out)."""
  times = collections.Counter({k: v for k, v in times.items() if k in ops})
  total = sum(times.values()) or 1
  kinds: collections.Counter = collections.Counter()
  layers: collections.Counter = collections.Counter()
  for name, ns in times.items():
    kinds[re.sub(r"[.\d]+$", "", name)] += ns
    layers[layer_of(ops.get(name, ("", ""))[1])] += ns
  ms = lambda ns: ns / steps / 1e6   # noqa: E731
  lines = [f"op time per step: {ms(total):.1f} ms over {len(times)} ops (summed over XLA's threads)", "", "by op kind:"]
  lines += [f"  {ms(v):8.2f} ms {100 * v / total:5.1f}%  {k}" for k, v in kinds.most_common(top)]
  lines += ["", "by layer:"]
  lines += [f"  {ms(v):8.2f} ms {100 * v / total:5.1f}%  {k}" for k, v in layers.most_common(top)]
  lines += ["", "top ops:"]
  lines += [f"  {ms(v):8.2f} ms {100 * v / total:5.1f}%  {k}  {ops.get(k, ('?', ''))[0]}"
            for k, v in times.most_common(top)]
  return "\n".join(lines)


def profile(config, steps: int = 6) -> str:
  from gen_jax.bench.runner import JaxBench
  bench = JaxBench(config)
  bench.call(2)
  ops = hlo_ops(bench.compiled.as_text())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp):
      bench.call(steps)
    times = op_times(tmp)
  return summarize(times, ops, steps)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m gen_jax.bench.step_profile", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--configs", default="dcgan", help="benchmark entries, as python -m gen_jax.bench takes them")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
  p.add_argument("--steps", type=int, default=6, help="traced steps")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  from gen_jax.bench import runner
  for spec in runner.parse_specs(args.configs):
    print(f"[{spec.name}]")
    print(profile(runner.build_config(spec, args.set), args.steps), flush=True)
  return 0


if __name__ == "__main__":
  from gen_jax import cli
  cli.main_guard(main)
