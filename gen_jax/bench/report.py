"""The benchmark's outputs: the printed table, the Markdown report and the JSON rows."""
from __future__ import annotations

import json
import math
import pathlib

from gen_jax.bench.hardware import one_line
from gen_jax.storage.atomic import write_text_atomic

MLP_VAE_PEAK_TARGET = 0.70   # issue 5: the MLP VAE at >= 70% of the measured matmul peak ...
MLP_VAE_TARGET_BATCH = 1000  # ... at batch 1000 (rows at other batch sizes are reported, not judged)
TORCH_EAGER_TARGET = 1.3     # issue 22: every family >= 1.3x PyTorch eager, measured in separate processes


def _num(x, fmt: str = ".1f") -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return format(x, fmt)


def _mb(x) -> str:
  return "-" if x is None else f"{x / 2**20:.0f}"


def train_table(rows: list[dict]) -> str:
  head = ("| config | batch | devices | compute | compile s | steps/s | images/s | GFLOP/s | % of peak | memory MB "
          "| torch eager steps/s | jax/eager | torch.compile steps/s | compile s (torch) | jax/compile |")
  lines = [head, "|" + "|".join(["---"] * 15) + "|"]
  for r in rows:
    lines.append(
        f"| {r['config']} | {r['batch_size']} | {r['num_devices']} | {r.get('compute_dtype', 'float32')} "
        f"| {_num(r['lower_s'] + r['compile_s'])} "
        f"| {_num(r['steps_per_s'])} | {_num(r['images_per_s'], '.0f')} | {_num(r['gflops_per_s'])} "
        f"| {_num(100 * r['fraction_of_peak'])} | {_mb(r['memory'].get('bytes'))} "
        f"| {_num(r.get('torch_steps_per_s'))} | {_num(r.get('jax_over_torch'), '.2f')} "
        f"| {_num(r.get('torch_compile_steps_per_s'))} | {_num(r.get('torch_compile_s'))} "
        f"| {_num(r.get('jax_over_torch_compile'), '.2f')} |")
  return "\n".join(lines)


def torch_notes(rows: list[dict]) -> list[str]:
  """Why a row has no PyTorch eager or torch.compile figure (one line each)."""
  return [f"- {r['config']}: {r[key]}" for r in rows for key in ("torch_note", "torch_compile_note") if r.get(key)]


def scaling_table(rows: list[dict]) -> str:
  lines = ["| config | devices | global batch | steps/s | images/s | vs 1 device |", "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['config']} | {r['num_devices']} | {r['batch_size']} | {_num(r['steps_per_s'])} "
                 f"| {_num(r['images_per_s'], '.0f')} | {_num(r['speedup_vs_1'], '.2f')} |")
  return "\n".join(lines)


def eval_table(rows: list[dict]) -> str:
  lines = ["| config | k | chunk | batch | images/s | temp MB (chunked) | temp MB (one chunk of k) |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['config']} | {r['k']} | {r['chunk_size']} | {r['eval_batch']} | {_num(r['images_per_s'])} "
                 f"| {r['temp_bytes_chunked'] / 2**20:.2f} | {r['temp_bytes_one_chunk'] / 2**20:.1f} |")
  return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
  """The issue's targets, checked on this run's rows."""
  out = []
  for r in rows:
    ratio = r.get("jax_over_torch")
    if ratio is not None and not math.isnan(ratio):
      rounds = ", ".join(f"{x:.2f}" for x in r.get("jax_over_torch_rounds", []))
      out.append(f"- {r['config']}: JAX / PyTorch eager = {ratio:.2f} (median of the rounds {rounds}) -> "
                 f"{'met' if ratio >= TORCH_EAGER_TARGET else 'NOT met'} (target >= {TORCH_EAGER_TARGET})")
  mlp = [r for r in rows if r["config"].split("@")[0] in ("mlp_vae", "configs/vae.py")
         and not math.isnan(r["fraction_of_peak"])]
  judged = [r for r in mlp if r["batch_size"] == MLP_VAE_TARGET_BATCH]
  target = f"target >= {100 * MLP_VAE_PEAK_TARGET:.0f}%"
  if judged:
    best = max(judged, key=lambda r: r["fraction_of_peak"])
    met = best["fraction_of_peak"] >= MLP_VAE_PEAK_TARGET
    out.append(f"- MLP VAE at batch {MLP_VAE_TARGET_BATCH}: best {100 * best['fraction_of_peak']:.1f}% of the matmul "
               f"peak timed in the same rounds ({best['config']}; {100 * best['fraction_of_best_peak']:.1f}% of the "
               f"largest peak of the run) -> {'met' if met else 'NOT met'} ({target})")
  for r in mlp:
    if r["batch_size"] != MLP_VAE_TARGET_BATCH:   # the target is stated at one batch size: do not judge others
      rerun = "" if judged else f"; run --configs=mlp_vae@{MLP_VAE_TARGET_BATCH} to check it"
      out.append(f"- {r['config']} (batch {r['batch_size']}): {100 * r['fraction_of_peak']:.1f}% of the matmul peak "
                 f"timed in the same rounds -- not judged: the {target} is for mlp_vae@{MLP_VAE_TARGET_BATCH}"
                 f"{rerun}")
  for r in mlp:
    if r.get("dot_ceiling"):
      c = r["dot_ceiling"]
      out.append(f"- {r['config']}: ceiling {100 * c['fraction_of_peak']:.1f}% of peak -- the step's "
                 f"{c['num_matmuls']} matmuls alone run at {c['gflops_per_s']:.1f} GFLOP/s ({c['protocol']}); "
                 f"the whole step reached {100 * r['fraction_of_peak']:.1f}%, i.e. "
                 f"{r['fraction_of_peak'] / c['fraction_of_peak']:.0%} of its ceiling")
  return out


def markdown(train_rows: list[dict], eval_rows: list[dict], scaling: list[dict], hardware: dict,
             peaks: dict[str, dict], command: str, settings: dict) -> str:
  """`peaks`: dtype -> PeakTracker.summary() of every dtype the rows were measured against."""
  parts = ["# gen_jax training benchmark", "", f"Command: `{command}`", "", f"Hardware: {one_line(hardware)}.", ""]
  for dtype, peak in peaks.items():
    parts += [f"Matmul peak ({dtype}): {peak['gflops_per_s']:.1f} GFLOP/s, the largest of "
              f"{len(peak['samples_gflops_per_s'])} measurements in this run ({peak['protocol']}, then timed again in "
              f"every round of every config computing in {dtype}; all values: {peak['samples_gflops_per_s']}).", ""]
  parts += ["Protocol: " + settings["protocol"], "", "## Training throughput", "", train_table(train_rows), ""]
  notes = sorted({r["memory"].get("source", "") for r in train_rows} - {""})
  parts += [f"Memory: {'; '.join(notes)}.", ""]
  missing = torch_notes(train_rows)
  if missing:
    parts += ["PyTorch rows left out:", "", *missing, ""]
  kernels = {f"{r['config']}: {r['cpu_conv_kernels']}" for r in train_rows
             if r.get("cpu_conv_kernels") and hardware.get("backend", "cpu") == "cpu"}
  if kernels:
    parts += ["XLA:CPU convolution kernels (config.train.cpu_conv_kernels, gen_jax/cpu_kernels.py): "
              + ", ".join(sorted(kernels)) + ".", ""]
  goal = targets(train_rows)
  if goal:
    parts += ["## Targets", "", *goal, ""]
  if eval_rows:
    parts += ["## Evaluation memory (importance-sampled NLL)", "", eval_table(eval_rows), "",
              eval_rows[0]["protocol"].replace(f"k={eval_rows[0]['k']}", "k as in the table") + ".", ""]
  if scaling:
    parts += ["## Data-parallel scaling (fake CPU devices)", "", scaling_table(scaling), "",
              "Each device count ran in its own process with XLA_FLAGS=--xla_force_host_platform_device_count=N; "
              "the global batch is split over the devices. The fake devices share the machine's cores, so this "
              "shows that sharded training runs, not a speed-up.", ""]
  return "\n".join(parts)


def write_json(path: str | pathlib.Path, rows: list[dict]) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  write_text_atomic(path, json.dumps(rows, indent=1, default=float) + "\n")
