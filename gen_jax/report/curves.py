"""Training curves from `<workdir>/metrics.jsonl`, drawn with matplotlib (Agg: no display needed).

Per run, one PNG per set of related training metrics that the run logged (losses, discriminator outputs,
gradient and parameter norms, ELBO terms, throughput, the rest); across runs, one PNG per metric that at least
two runs logged (steps/s, recon_mse, ...), one line per run. Missing keys are skipped, NaN/Inf (written as
strings by metrics_log) become gaps, a truncated last line (a killed run) is ignored, and a single logged row
is drawn as a marker.
"""
from __future__ import annotations

import json
import math
import pathlib
import re
from typing import Iterable, Mapping, Sequence

# Keys that are bookkeeping, not curves ('averaged_over': the steps a train row's means cover).
_NOT_CURVES = ("step", "split", "averaged_over")
# A metric logged for the EMA weights as K and for the raw weights as K + RAW_SUFFIX is drawn as two lines of one
# panel in a run's curves.
RAW_SUFFIX = "_raw"
# Named metric sets, first match wins; the rest go to "other". Each is (file name, title, predicate).
_SETS: tuple[tuple[str, str, object], ...] = (
    ("throughput", "Throughput", lambda k: k in ("steps_per_sec", "examples_per_sec", "wall_seconds")),
    ("norms", "Gradient and parameter norms", lambda k: k.endswith("grad_norm") or k.endswith("param_norm")),
    ("discriminator", "Discriminator outputs D(x), D(G(z))",
     lambda k: k in ("d_real", "d_fake", "d_recon", "d_prior") or k.startswith("d_out")),
    ("losses", "Losses", lambda k: k == "loss" or k.endswith("_loss") or k in ("gan_d", "gan_g", "gp", "r1")),
    ("sample_quality", "Sample quality (Frechet distance in classifier features, mode counts)",
     lambda k: k.removesuffix(RAW_SUFFIX) in ("fd_classifier", "modes_covered", "high_quality_fraction",
                                              "kl_to_uniform")),
    ("vae_terms", "ELBO terms (KL, reconstruction)",
     lambda k: k in ("elbo", "kl", "recon_log_prob", "llike", "recon_mse", "bits_per_dim", "kl_weight",
                     "active_units", "nll")),
)


def read_rows(path: str | pathlib.Path) -> list[dict]:
  """Rows of a metrics.jsonl; a line that is not valid JSON (e.g. cut short by a crash) is skipped."""
  rows = []
  path = pathlib.Path(path)
  if not path.exists():
    return rows
  for line in path.read_text().splitlines():
    line = line.strip()
    if not line:
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and "step" in row:
      rows.append(row)
  return rows


def _number(v) -> float | None:
  if isinstance(v, bool) or v is None:
    return None
  if isinstance(v, (int, float)):
    return float(v)
  if isinstance(v, str):
    try:
      return float(v)
    except ValueError:
      return None
  return None


def series(rows: Sequence[Mapping], key: str, split: str = "train") -> tuple[list[int], list[float]]:
  """(steps, values) of one metric in one split, sorted by step; a step logged twice (a resumed run)
  keeps its last value; NaN where the value is non-finite."""
  by_step: dict[int, float] = {}
  for row in rows:
    if row.get("split", "train") != split or key not in row:
      continue
    x = _number(row[key])
    if x is None:
      continue
    by_step[int(row["step"])] = x if math.isfinite(x) else math.nan
  steps = sorted(by_step)
  return steps, [by_step[s] for s in steps]


def numeric_keys(rows: Iterable[Mapping], split: str = "train") -> list[str]:
  """Metric names with at least one numeric value in `split`, in first-seen order."""
  keys: dict[str, None] = {}
  for row in rows:
    if row.get("split", "train") != split:
      continue
    for k, v in row.items():
      if k not in _NOT_CURVES and _number(v) is not None:
        keys.setdefault(k, None)
  return list(keys)


def metric_sets(keys: Sequence[str]) -> list[tuple[str, str, list[str]]]:
  """Splits metric names into the named sets (only non-empty ones): [(file name, title, keys)]."""
  out: dict[str, tuple[str, list[str]]] = {}
  for k in keys:
    for name, title, pred in _SETS:
      if pred(k):
        break
    else:
      name, title = "other", "Other training metrics"
    out.setdefault(name, (title, []))[1].append(k)
  order = [s[0] for s in _SETS if s[0] != "throughput"] + ["other", "throughput"]
  return [(n, out[n][0], out[n][1]) for n in order if n in out]


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _plot_lines(ax, lines: Sequence[tuple[str, list[int], list[float]]], title: str) -> None:
  for label, steps, values in lines:
    style = {"marker": "o", "markersize": 3} if len(steps) <= 3 else {}
    ax.plot(steps, values, label=label, linewidth=1.2, **style)
  ax.set_title(title, fontsize=9)
  ax.set_xlabel("step", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(True, alpha=0.3)
  ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 5))


def _save(fig, path: pathlib.Path) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  _pyplot().close(fig)
  return path


def plot_run_curves(rows: Sequence[Mapping], out_dir: str | pathlib.Path, title: str = "",
                    split: str = "train") -> dict[str, pathlib.Path]:
  """One PNG per metric set of one run (a small-multiples grid, one panel per metric): {set name: path}."""
  out_dir = pathlib.Path(out_dir)
  plt = _pyplot()
  paths = {}
  for name, set_title, keys in metric_sets(numeric_keys(rows, split)):
    paired = {k for k in keys if k.endswith(RAW_SUFFIX) and k.removesuffix(RAW_SUFFIX) in keys}
    panels = []
    for k in keys:
      if k in paired:
        continue
      lines = [(k, *series(rows, k, split))]
      if k + RAW_SUFFIX in paired:   # EMA and raw weights in one panel
        lines = [(f"{k} (EMA weights)", *lines[0][1:]),
                 (f"{k} (raw weights)", *series(rows, k + RAW_SUFFIX, split))]
      lines = [line for line in lines if line[1]]
      if lines:
        panels.append((k, lines))
    if not panels:
      continue
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.4 * nrow), squeeze=False)
    for ax, (key, lines) in zip(axes.flat, panels):
      _plot_lines(ax, lines, key)
      if len(lines) > 1:
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
      ax.axis("off")
    fig.suptitle(f"{title}: {set_title}" if title else set_title, fontsize=10)
    paths[name] = _save(fig, out_dir / f"{name}.png")
  return paths


def shared_keys(runs: Mapping[str, Sequence[Mapping]], split: str = "train", min_runs: int = 2) -> list[str]:
  """Metrics logged by at least `min_runs` runs, steps/s first, then in first-seen order."""
  counts: dict[str, int] = {}
  for rows in runs.values():
    for k in numeric_keys(rows, split):
      counts[k] = counts.get(k, 0) + 1
  keys = [k for k, c in counts.items() if c >= min_runs and k not in ("wall_seconds",)]
  return sorted(keys, key=lambda k: (k != "steps_per_sec", k != "examples_per_sec"))


THROUGHPUT_KEYS = ("steps_per_sec", "examples_per_sec")


def plot_comparison(runs: Mapping[str, Sequence[Mapping]], out_dir: str | pathlib.Path, split: str = "train",
                    keys: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> dict[str, pathlib.Path]:
  """One PNG per metric shared by two or more runs (or per metric of `keys`), one line per run: {metric: path}.
  A metric whose positive values span more than two decades is drawn on a log axis."""
  out_dir = pathlib.Path(out_dir)
  plt = _pyplot()
  paths = {}
  for key in (shared_keys(runs, split) if keys is None else keys):
    if key in exclude:
      continue
    lines = [(name, *series(rows, key, split)) for name, rows in runs.items()]
    lines = [line for line in lines if line[1]]
    if not lines:
      continue
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    _plot_lines(ax, lines, key)
    finite = [v for _, _, values in lines for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
      ax.set_yscale("log")
    ax.legend(fontsize=7)
    paths[key] = _save(fig, out_dir / f"{_file_name(key)}.png")
  return paths


def _file_name(key: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]", "_", key)
