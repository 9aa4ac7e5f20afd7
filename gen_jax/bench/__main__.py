"""Training benchmark: python -m gen_jax.bench [--configs=mlp_vae,conv_vae,dcgan,resnet_gan,vaegan] [--torch]

For each config: compile time (lowering + XLA compilation), steady-state steps/s and images/s after warm-up,
achieved FLOP/s (XLA cost analysis x steps/s) as a fraction of the machine's measured matmul peak, and memory;
with --torch the same architecture's update in PyTorch (eager, and torch.compile where it works), each in its
own child process at PyTorch's default threading, timed in rounds alternating with the JAX step's, and the
median of the per-round ratios. On CPU the large configs run at CPU-sized batches unless an entry names one
(resnet_gan -> resnet_gan@16, dcgan_cifar10 and conv_vae_cifar10 -> @32; the output says so).
Prints a table and the hardware; --json writes the rows, --markdown a report. --eval_memory adds the
bounded-memory NLL rows, --scaling=1,2,4,8 the data-parallel table (one subprocess per device count).

Entries of --configs: mlp_vae, conv_vae, dcgan, resnet_gan, vaegan, the CIFAR-10 colour entries dcgan_cifar10 and
conv_vae_cifar10 (not in the default list), or a config spec (configs/vae.py:conv); append @BATCH for a batch size
(mlp_vae@4096). --config=SPEC may be repeated.
"""
from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys

from gen_jax.errors import ConfigError
from gen_jax.storage.atomic import write_text_atomic

DEFAULT_CONFIGS = "mlp_vae,conv_vae,dcgan,resnet_gan,vaegan"
# Batch sizes used on CPU for entries without '@BATCH' (the config's 64 x 5 critic steps: minutes per round).
CPU_BATCHES = {"resnet_gan": 16, "dcgan_cifar10": 32, "conv_vae_cifar10": 32}


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m gen_jax.bench", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--configs", default=None, help=f"comma-separated entries (default {DEFAULT_CONFIGS})")
  p.add_argument("--config", action="append", default=[], help="a config spec, e.g. configs/gan.py:resnet@64")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="config override applied to every entry, e.g. --set model.activation=relu")
  p.add_argument("--batch_size", type=int, default=None, help="override data.batch_size of every entry")
  p.add_argument("--g_width", type=int, default=None, help="override model.g_width (GAN / VAE-GAN entries)")
  p.add_argument("--d_width", type=int, default=None, help="override model.d_width (GAN / VAE-GAN entries)")
  p.add_argument("--steps_per_dispatch", type=int, default=1, help="train steps per jitted call (lax.scan)")
  p.add_argument("--compute_dtype", choices=("float32", "bfloat16"), default=None,
                 help="config.train.compute_dtype (mixed precision)")
  p.add_argument("--cpu_conv_kernels", choices=("xla", "ynnpack"), default=None,
                 help="config.train.cpu_conv_kernels (XLA:CPU convolution kernels; default: each config's own)")
  p.add_argument("--min_steps", type=int, default=10, help="steps per timed round, at least")
  p.add_argument("--min_seconds", type=float, default=2.0, help="seconds per timed round, at least")
  p.add_argument("--repeats", type=int, default=3, help="timed rounds (JAX and PyTorch alternate)")
  p.add_argument("--warmup", type=int, default=2, help="calls before timing")
  p.add_argument("--torch", action="store_true",
                 help="add the PyTorch reference of each config (own process per mode, see --torch_modes)")
  p.add_argument("--torch_modes", default="eager,compile",
                 help="PyTorch modes of --torch: eager, compile (torch.compile, inductor on CPU)")
  p.add_argument("--torch_compile_backend", default="inductor", help="torch.compile backend of the compile mode")
  p.add_argument("--torch_threads", type=int, default=None,
                 help="torch.set_num_threads in the PyTorch process (default: PyTorch's own default)")
  p.add_argument("--no_peak", action="store_true", help="skip the matmul-peak measurement")
  p.add_argument("--peak_size", type=int, default=None, help="matmul size of the peak measurement")
  p.add_argument("--peak_dtype", choices=("float32", "bfloat16"), default=None,
                 help="dtype of the peak matmul (default: --compute_dtype, else float32)")
  p.add_argument("--eval_memory", action="store_true", help="add the importance-sampled NLL memory rows")
  p.add_argument("--eval_memory_config", default="mlp_vae", help="VAE entry of the NLL memory rows")
  p.add_argument("--eval_ks", default="500,5000", help="importance-sample counts k of the NLL memory rows")
  p.add_argument("--eval_batch", type=int, default=50, help="test images per NLL batch")
  p.add_argument("--scaling", default="", help="device counts of the scaling table, e.g. 1,2,4,8 (CPU)")
  p.add_argument("--scaling_configs", default="mlp_vae@128,dcgan", help="entries of the scaling table")
  p.add_argument("--json", default=None, help="write the rows (a JSON list) here")
  p.add_argument("--markdown", default=None, help="write a Markdown report here")
  p.add_argument("--dot_ceiling", action="store_true",
                 help="for MLP VAE entries, also time each matmul of the step alone (bench/dot_ceiling.py)")
  p.add_argument("--quiet", action="store_true", help="print only the final table")
  return p.parse_args(argv)


def entry_overrides(config_keys, args) -> list[str]:
  out = [f"train.steps_per_dispatch={args.steps_per_dispatch}"]
  if args.compute_dtype:
    out.append(f"train.compute_dtype={args.compute_dtype}")
  if args.cpu_conv_kernels:
    out.append(f"train.cpu_conv_kernels={args.cpu_conv_kernels}")
  if args.batch_size:
    out.append(f"data.batch_size={args.batch_size}")
  for key, value in (("g_width", args.g_width), ("d_width", args.d_width)):
    if value and key in config_keys:
      out.append(f"model.{key}={value}")
  return out + list(args.set)


def child_config_spec(config_spec: str) -> str:
  """The spec with its file made absolute when it exists here (the PyTorch process runs in the repository root)."""
  path, sep, variant = config_spec.partition(":")
  return os.path.abspath(path) + sep + variant if os.path.isfile(path) else config_spec


def jax_threading(hw: dict, jb) -> dict:
  """What sets the JAX side's threads: XLA flags, devices, the cores XLA:CPU's pool may use, compiler options."""
  return {"xla_flags": hw.get("xla_flags", ""), "num_devices": jb.describe()["num_devices"],
          "backend": hw.get("backend"), "usable_cores": hw.get("cores"), "omp_wait_policy": hw.get("omp_wait_policy"),
          "compiler_options": jb.run.compiler_options()}


def torch_protocol(modes, infos: dict[str, dict], args) -> str:
  """The PyTorch sentence of the protocol: processes, threads and waiting policy as the children saw them."""
  if not modes:
    return "No PyTorch reference (--torch not given)."
  parts = []
  for mode, info in infos.items():
    env = ", ".join(f"{k}={v}" for k, v in info.get("env", {}).items()) or "none set"
    what = "eager" if mode == "eager" else f"torch.compile (backend {info.get('backend')}, networks compiled, " \
                                           f"optimizers eager)"
    parts.append(f"{what}: torch {info.get('torch')}, {info.get('threads')} threads "
                 f"({info.get('interop_threads')} inter-op, {info.get('parallel_backend')}), "
                 f"OMP_WAIT_POLICY {info.get('omp_wait_policy') or 'unset (library default)'}, threading "
                 f"environment: {env}")
  threads = (f"torch.set_num_threads({args.torch_threads})" if args.torch_threads else
             "PyTorch's default threads (--torch_threads not given)")
  return (f"PyTorch: each mode in its own process (python -m gen_jax.bench.torch_reference), started from the "
          f"user's environment without JAX/XLA settings, {threads}; " + ("; ".join(parts) or "no process started")
          + ". The architectures of gen_jax/bench/torch_reference.py.")


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)

  from gen_jax.bench import hardware, report, runner, timing, torch_process
  from gen_jax.bench.peak import MatmulBench as PeakMatmul, PeakTracker, peak_dtype
  import jax

  say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
  modes = [m.strip() for m in args.torch_modes.split(",") if m.strip()] if args.torch else []
  if set(modes) - {"eager", "compile"}:
    raise ConfigError(f"--torch_modes={args.torch_modes!r}: use eager, compile or eager,compile")
  entries = args.configs or ("" if args.config else DEFAULT_CONFIGS)   # --config alone: that file only
  cpu_sized = {}
  if jax.default_backend() == "cpu" and not args.batch_size:
    names = [e.strip() for e in entries.split(",") if e.strip()]
    cpu_sized = {n: f"{n}@{CPU_BATCHES[n]}" for n in names if n in CPU_BATCHES}
    entries = ",".join(cpu_sized.get(n, n) for n in names)
  specs = runner.parse_specs(entries, args.config)
  if not specs:
    raise ConfigError("no benchmark entries: pass --configs=mlp_vae,... or --config=configs/vae.py")
  cpu_note = ("CPU-sized batches: " + ", ".join(f"{n} runs as {e}" for n, e in cpu_sized.items())
              + " (write NAME@BATCH for another batch size)") if cpu_sized else ""
  if cpu_note:
    print(f"note: {cpu_note}", flush=True)
  hw = hardware.describe()
  hw["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "")
  say(f"hardware: {hardware.one_line(hw)}")
  # One peak per dtype the entries compute in (a bfloat16 step against the bfloat16 matmul peak).
  peaks: dict[str, PeakTracker] = {}

  def tracker(dtype: str) -> PeakTracker:
    if dtype not in peaks:
      peaks[dtype] = PeakTracker(args.peak_size, enabled=not args.no_peak, dtype=dtype)
      if peaks[dtype].enabled:
        say(f"matmul peak: {peaks[dtype].measure():.1f} GFLOP/s ({peaks[dtype].last['protocol']})")
    return peaks[dtype]

  main_peak = tracker(peak_dtype(args.compute_dtype, args.peak_dtype))
  use_torch = bool(modes) and torch_process.available()
  torch_note = torch_process.TORCH_MISSING if modes and not use_torch else ""
  if torch_note:
    print(f"note: {torch_note}", flush=True)
  torch_infos: dict[str, dict] = {}

  rows = []
  for spec in specs:
    base = runner.build_config(spec)
    overrides = entry_overrides(set(base.model.keys()), args)
    config = runner.build_config(spec, overrides)
    # The PyTorch processes first (each then waits on its stdin), so that JAX's compile time is its own.
    children: dict[str, torch_process.TorchProcess] = {}
    row_torch: dict = {}
    for mode in modes if use_torch else []:
      say(f"[{spec.name}] starting the PyTorch {mode} process ...")
      child = torch_process.TorchProcess(child_config_spec(spec.config_spec), overrides + list(spec.overrides),
                                         mode=mode, backend=args.torch_compile_backend, threads=args.torch_threads)
      key = "torch" if mode == "eager" else "torch_compile"
      row_torch[f"{key}_info"] = child.info
      if child.error:
        row_torch[f"{key}_note"] = f"no PyTorch {mode} row: {child.error}"
        say(f"[{spec.name}] {row_torch[f'{key}_note']}")
      else:
        children[key] = child
        torch_infos[mode] = child.info
    say(f"[{spec.name}] {spec.config_spec} batch {config.data.batch_size}: compiling ...")
    jb = runner.JaxBench(config, steps_per_dispatch=args.steps_per_dispatch)
    dtype = peak_dtype(config.train.get("compute_dtype"), args.peak_dtype)
    peak = tracker(dtype)
    benches = {"jax": jb, **children}
    entry_note = torch_note or row_torch.get("torch_note", "")
    if peak.enabled:
      benches["peak"] = PeakMatmul(args.peak_size, dtype)
    try:
      times = timing.interleaved(benches, repeats=args.repeats, min_steps=args.min_steps,
                                 min_seconds=args.min_seconds, warmup_calls=args.warmup)
    finally:
      for child in children.values():
        child.close()
    desc = jb.describe()
    jt = times["jax"]
    paired_fraction = float("nan")
    if peak.enabled:
      peak_rounds = [s * benches["peak"].flops_per_step / 1e9 for s in times["peak"]["rounds_steps_per_s"]]
      peak.samples.extend(peak_rounds)
      paired_fraction = timing.paired_ratio([s * jb.flops_per_step / 1e9 for s in jt["rounds_steps_per_s"]],
                                            peak_rounds)
    row = {"config": spec.name, "config_spec": spec.config_spec, "overrides": list(spec.overrides), **desc,
           "steps_per_s": jt["steps_per_s"], "rounds_steps_per_s": jt["rounds_steps_per_s"],
           "steps_per_round": jt["steps_per_round"], "timed_seconds": jt["seconds"],
           "images_per_s": jt["steps_per_s"] * jb.images_per_step,
           "gflops_per_s": jb.flops_per_step * jt["steps_per_s"] / 1e9,
           "rss": hardware.rss_bytes(), "torch_note": entry_note, "fraction_of_peak": paired_fraction,
           "peak_dtype": dtype, "cpu_sized_batch": spec.base_name in cpu_sized,
           "jax_threading": jax_threading(hw, jb)}
    row.update(row_torch)
    for key in ("torch", "torch_compile"):
      if key in times:
        tt = times[key]
        ratios = timing.round_ratios(jt["rounds_steps_per_s"], tt["rounds_steps_per_s"])
        row.update({f"{key}_steps_per_s": tt["steps_per_s"], f"{key}_rounds_steps_per_s": tt["rounds_steps_per_s"],
                    f"{key}_images_per_s": tt["steps_per_s"] * benches[key].images_per_step,
                    f"{key}_threads": benches[key].info.get("threads"),
                    f"jax_over_{key}": timing.paired_ratio(jt["rounds_steps_per_s"], tt["rounds_steps_per_s"]),
                    f"jax_over_{key}_rounds": ratios})
    if "torch_compile" in times:
      row["torch_compile_s"] = benches["torch_compile"].info.get("compile_s")
    if args.dot_ceiling and config.model.family == "vae" and config.model.arch == "mlp":
      from gen_jax.bench import dot_ceiling
      layers = dot_ceiling.mlp_vae_layers(config, jb.run.dataset.train.images.shape[1:])
      row["dot_ceiling"] = dot_ceiling.measure(jb.batch_size, layers, jb.run.compiler_options(),
                                               peak_size=args.peak_size, dtype=dtype)
      say(f"[{spec.name}] its matmuls alone: {row['dot_ceiling']['gflops_per_s']:.1f} GFLOP/s, "
          f"{100 * row['dot_ceiling']['fraction_of_peak']:.1f}% of the peak timed with them")
    rows.append(row)
    say(f"[{spec.name}] compile {desc['lower_s'] + desc['compile_s']:.1f} s, {row['steps_per_s']:.1f} steps/s, "
        f"{row['images_per_s']:.0f} images/s, {row['gflops_per_s']:.1f} GFLOP/s"
        + (f", torch eager {row['torch_steps_per_s']:.1f} steps/s, jax/eager {row['jax_over_torch']:.2f}"
           if "torch_steps_per_s" in row else "")
        + (f", torch.compile {row['torch_compile_steps_per_s']:.1f} steps/s, jax/compile "
           f"{row['jax_over_torch_compile']:.2f}" if "torch_compile_steps_per_s" in row else ""))
    del jb, benches
    gc.collect()

  for row in rows:
    best_peak = peaks[row["peak_dtype"]].best
    row["peak_gflops_per_s"] = best_peak
    row["fraction_of_best_peak"] = row["gflops_per_s"] / best_peak if main_peak.enabled else float("nan")

  eval_rows = []
  if args.eval_memory:
    spec = runner.parse_spec(args.eval_memory_config)
    ks = [int(k) for k in args.eval_ks.split(",") if k.strip()]
    from gen_jax.bench.memory import eval_memory_rows
    say(f"[eval memory] {spec.name}: k = {ks} ...")
    eval_rows = eval_memory_rows(runner.build_config(spec), spec.name, ks, args.eval_batch)

  scaling = []
  if args.scaling:
    from gen_jax.bench.scaling import scaling_rows
    counts = [int(n) for n in args.scaling.split(",") if n.strip()]
    say(f"[scaling] {args.scaling_configs} on {counts} devices (one subprocess each) ...")
    extra = [f"--repeats={args.repeats}", f"--min_steps={args.min_steps}", f"--min_seconds={args.min_seconds}"]
    scaling = scaling_rows(args.scaling_configs, counts, extra)

  hw["load_average_end"] = hardware.load_average()
  peak_info = {dtype: measured.summary() for dtype, measured in peaks.items()}
  for row in rows + eval_rows + scaling:
    row.setdefault("kind", "train")
    row["hardware"] = hw
    row["peak"] = peak_info.get(row.get("peak_dtype"), peak_info[main_peak.dtype])
  command = "python -m gen_jax.bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
  settings = {"protocol": (
      f"train steps of each config on its dataset (train split, seed from the config), {args.warmup} warm-up calls "
      f"after the first, then {args.repeats} timed rounds of >= {args.min_steps} steps and >= {args.min_seconds} s "
      f"each (block_until_ready at the ends of a round only), the JAX step and each PyTorch process taking "
      f"turns (JAX round, PyTorch eager round, torch.compile round, ...); steps/s is the median round, jax/torch "
      f"the median of the per-round ratios (JSON: every round's values). The peak matmul (in the dtype the "
      f"step computes in) is timed in the same rounds; "
      f"'% of peak' is the median over rounds of (model FLOP/s / peak FLOP/s of that round), and JSON's "
      f"fraction_of_best_peak divides by the largest peak seen in the whole run instead. "
      f"images/s counts the real images a step consumes "
      f"(batch x n_critic for the resnet GAN). FLOPs per step: XLA cost analysis of the compiled step. "
      + torch_protocol(modes, torch_infos, args) + (f" {cpu_note}." if cpu_note else ""))}
  print()
  print(f"hardware: {hardware.one_line(hw)}")
  if main_peak.enabled:
    for dtype, info in peak_info.items():
      print(f"matmul peak ({dtype}): {info['gflops_per_s']:.1f} GFLOP/s (largest of {info['samples_gflops_per_s']})")
  print(report.train_table(rows))
  for line in report.torch_notes(rows) + report.targets(rows):
    print(line)
  if eval_rows:
    print(report.eval_table(eval_rows))
  if scaling:
    print(report.scaling_table(scaling))
  if args.json:
    report.write_json(args.json, rows + eval_rows + scaling)
  if args.markdown:
    text = report.markdown(rows, eval_rows, scaling, hw, peak_info, command, settings) if main_peak.enabled else None
    if text is None:
      raise ConfigError("--markdown needs the matmul peak; drop --no_peak")
    write_text_atomic(args.markdown, text)
  return 0


if __name__ == "__main__":
  from gen_jax import cli
  cli.main_guard(main)
