"""What a run directory holds, read for the comparison report: config, results, logs, images, ranking.

`load_run` reads one `--workdir` of train.py (config.json, eval/metrics.json, anomaly/anomaly.json,
metrics.jsonl); `metric_table` lines up every run's metrics by the table of gen_jax/eval/metric_specs.py and
ranks each row among runs on the same data; `training_summary` describes how each run was trained;
`collect_images` copies the image grids next to the report. gen_jax/report/build.py turns this into the page.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import shutil
import statistics
from typing import Any, Sequence

from gen_jax import config as config_lib
from gen_jax.errors import GenJaxError
from gen_jax.report import curves as curves_lib
from gen_jax.report import ranking
from gen_jax.eval import metric_specs as specs
from gen_jax.eval.metric_text import cell_text
from gen_jax.eval.params import count_params
from gen_jax.eval.suite import EVAL_SUITES

# The capabilities of the built-in families, for metrics.json files written before eval.py recorded them (and runs
# not evaluated yet). A family added later records its own: it needs no line here.
LEGACY_CAPABILITIES = {
    "vae": {"has_encoder": True, "has_likelihood": True, "has_discriminator": False},
    "gan": {"has_encoder": False, "has_likelihood": False, "has_discriminator": True},
    "vaegan": {"has_encoder": True, "has_likelihood": False, "has_discriminator": True},
}

IMAGE_KINDS = (("samples", "Samples"), ("reconstructions", "Reconstructions"),
               ("interpolation_linear", "Linear interpolations"),
               ("interpolation_spherical", "Spherical interpolations"))


@dataclasses.dataclass
class RunInfo:
  """What the report knows about one run directory."""
  name: str
  path: pathlib.Path
  config: dict
  rows: list[dict]
  eval: dict | None = None
  anomaly: dict | None = None
  status: str = "not evaluated"
  asset_dir: str = ""
  missing_groups: list[str] = dataclasses.field(default_factory=list)   # asked for by its config, not in the file

  @property
  def metrics(self) -> dict[str, Any]:
    out = dict((self.eval or {}).get("metrics") or {})
    for score, auroc in ((self.anomaly or {}).get("mean") or {}).items():
      out[f"anomaly_auroc_{score}"] = auroc
    return out

  @property
  def family(self) -> str:
    return (self.eval or {}).get("family") or _get(self.config, "model.family", "?")

  @property
  def capabilities(self) -> dict[str, Any]:
    """What the run's model family can do (gen_jax.models.family.Capabilities as a dict), as eval.py recorded it;
    for a file from before eval.py recorded it, the built-in family's; {} when not known."""
    recorded = (self.eval or {}).get("capabilities")
    if isinstance(recorded, dict):
      return recorded
    return dict(LEGACY_CAPABILITIES.get(self.family, {}))

  @property
  def dataset(self) -> str:
    """The data the numbers are about: runs are ranked only against runs on the same data."""
    name = str(((self.eval or {}).get("protocol") or {}).get("dataset") or _get(self.config, "data.name", "?"))
    classes = _get(self.config, "data.classes")
    return name + (f" (train classes {', '.join(str(c) for c in classes)})" if classes else "")


def _get(d: dict, dotted: str, default=None):
  for part in dotted.split("."):
    if not isinstance(d, dict) or part not in d:
      return default
    d = d[part]
  return d


def read_json(path: pathlib.Path, what: str, fix: str) -> dict:
  try:
    data = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise GenJaxError(f"{path} ({what}) cannot be read: {e}. {fix}") from None
  if not isinstance(data, dict):
    raise GenJaxError(f"{path} ({what}) holds a {type(data).__name__}, not a JSON object. {fix}")
  return data


def eval_fix(path: pathlib.Path) -> str:
  return f"Delete it and evaluate again: python eval.py --workdir={path}"


def load_run(path: str | pathlib.Path, name: str | None = None) -> RunInfo:
  """Reads a run directory; a path that is not one is a GenJaxError saying how to make one."""
  path = pathlib.Path(path)
  how = (f"Make one with `python train.py --config=configs/vae.py --workdir={path}` "
         f"(then `python eval.py --workdir={path}`), or pass the --workdir of an existing run.")
  if not path.exists():
    raise GenJaxError(f"run directory {path} does not exist. {how}")
  if not path.is_dir() or not (path / "config.json").is_file():
    raise GenJaxError(f"{path} is not a gen_jax run directory: it has no config.json (train.py writes one into "
                      f"every --workdir). {how}")
  config = read_json(path / "config.json", "run config", "It is written by train.py; restore it or retrain.")
  run = RunInfo(name=name or path.name, path=path, config=config, rows=curves_lib.read_rows(path / "metrics.jsonl"))
  if (path / "eval" / "metrics.json").is_file():
    run.eval, run.status = read_json(path / "eval" / "metrics.json", "eval results", eval_fix(path)), "evaluated"
  if (path / "anomaly" / "anomaly.json").is_file():
    run.anomaly = read_json(path / "anomaly" / "anomaly.json", "anomaly results",
                             "Delete it and rerun the anomaly evaluation, or leave it out of the report.")
  return run


def run_names(paths: Sequence[pathlib.Path]) -> list[str]:
  """Directory names; when two runs share one, the parent folder is added: 'vae (sweep1)'."""
  names = [p.resolve().name for p in paths]
  out = []
  for p, n in zip(paths, names):
    out.append(f"{n} ({p.resolve().parent.name})" if names.count(n) > 1 else n)
  for i, n in enumerate(out):  # still equal (same parent name too): number them
    if out.count(n) > 1:
      out[i] = f"{n} #{i + 1}"
  return out


# --------------------------------------------------------------------------- numbers


def num(value) -> float | None:
  return specs.as_number(value)


# Metric groups measured on the pixel values themselves: a binarized and a grey-level copy of one dataset are
# different data there. The other groups compare samples with the same real reference set (or are scale-free),
# so runs on 'binarized_mnist' and 'mnist' are ranked together on them.
EXACT_DATA_GROUPS = ("likelihood", "imputation", "other")


def base_dataset(dataset: str) -> str:
  return dataset.removeprefix("binarized_")


def rank_key(run: RunInfo, group: str) -> str:
  """The data a run's metrics of `group` are ranked on: runs are only ranked against runs with the same key."""
  return run.dataset if group in EXACT_DATA_GROUPS else base_dataset(run.dataset)


# Groups measured in a feature network's space: runs on the same data but measured with different networks (another
# classifier, or the same weights read out another way: another sha256) are not ranked against each other.
FEATURE_GROUPS = ("samples", "latent")


def feature_net_sha(run: RunInfo, group: str) -> str | None:
  protocol = ((run.eval or {}).get("protocol") or {}).get(group)
  return protocol.get("feature_network_sha256") if isinstance(protocol, dict) else None


# The partition of runs with no numbers of a feature group when the runs that have them are split by network:
# not evaluated yet, or evaluated with the group skipped (e.g. no classifier for own data).
NOT_MEASURED = "not evaluated"
SKIPPED = "skipped"


def unmeasured_label(run: RunInfo, group: str) -> str:
  """Why a run has no numbers of `group`: 'not evaluated' (no metrics.json, or the group not run) or '<group>
  skipped' (its metrics.json records the skip and its reason)."""
  protocol = ((run.eval or {}).get("protocol") or {}).get(group)
  return f"{group} {SKIPPED}" if isinstance(protocol, dict) and "skipped" in protocol else NOT_MEASURED


def is_unmeasured_key(key: str) -> bool:
  """Whether a dataset_groups key is a partition of runs without numbers (no other data: see unmeasured_label)."""
  return key.endswith(f", {NOT_MEASURED}") or key.endswith(f" {SKIPPED}")


def has_numbers(run: RunInfo, group: str) -> bool:
  """Whether a run has any metric of `group` (a run not evaluated yet, or whose group was skipped, has none)."""
  return any(specs.group_of(name) == group for name in run.metrics)


def dataset_groups(runs: Sequence[RunInfo], group: str = "likelihood") -> dict[str, list[int]]:
  """{ranking key: indices of the runs with it}, in the order runs were given. In FEATURE_GROUPS, runs on the same
  data whose feature networks differ are split further ('mnist, features 6901d83c'). A run with no numbers of the
  group (not evaluated, or the group skipped) has no network to differ by: it stays under the plain key, or under
  'mnist, not evaluated' / 'mnist, samples skipped' when the runs that have numbers are split."""
  out: dict[str, list[int]] = {}
  for i, run in enumerate(runs):
    out.setdefault(rank_key(run, group), []).append(i)
  if group not in FEATURE_GROUPS:
    return out
  split: dict[str, list[int]] = {}
  for key, members in out.items():
    measured = {i for i in members if has_numbers(runs[i], group)}
    shas = {feature_net_sha(runs[i], group) for i in measured}
    for i in members:
      sha = feature_net_sha(runs[i], group)
      if len(shas) <= 1:
        sub = key
      elif i not in measured:
        sub = f"{key}, {unmeasured_label(runs[i], group)}"
      else:
        sub = f"{key}, features {sha[:8] if sha else 'not recorded'}"
      split.setdefault(sub, []).append(i)
  return split


def metric_table(runs: Sequence[RunInfo]) -> list[dict]:
  """Rows of the big table, in report order: {name, group, label, unit, direction, target, arrow, meaning,
  values: [float|None per run], cells: [text per run], best: [run indices], ranked: [(data, members, best)],
  marked: {run index: why it is not ranked}}. A metric is ranked separately within each set of runs on the same
  data (see rank_key), by the rule of gen_jax/report/ranking.py (baselines, gates)."""
  all_names = set().union(*(r.metrics for r in runs)) if runs else set()
  rows = []
  for group, names in specs.ordered_names(all_names):
    partitions = dataset_groups(runs, group)
    for name in names:
      spec = specs.spec_or_unknown(name)
      values = [num(r.metrics.get(name)) for r in runs]
      ranked, marked = [], {}
      for data, members in partitions.items():
        verdicts = ranking.judge_runs(name, {str(i): [runs[i].metrics] for i in members},
                                      conditional={str(i): bool(runs[i].capabilities.get("conditional"))
                                                   for i in members})
        marked.update({int(i): v.marked for i, v in verdicts.items() if v.marked and values[int(i)] is not None})
        best = [i for i in members if verdicts[str(i)].best]
        if best:
          ranked.append((data, members, best))
      rows.append({"name": name, "group": group, "label": spec.label, "unit": spec.unit,
                   "direction": spec.direction, "target": spec.target, "arrow": spec.arrow,
                   "meaning": spec.meaning, "values": values,
                   "cells": [cell_text(name, r.metrics) for r in runs],
                   "best": sorted(i for _, _, best in ranked for i in best), "ranked": ranked, "marked": marked})
  return rows


def protocol_groups(report: dict | None) -> dict[str, dict]:
  """{group: {key: value}}: dict entries of 'protocol' are groups; scalar entries (seed, dataset, and every
  entry of an older flat protocol) form the group 'general'."""
  protocol = (report or {}).get("protocol") or {}
  out: dict[str, dict] = {}
  for key, value in protocol.items():
    if isinstance(value, dict):
      out[key] = value
    else:
      out.setdefault("general", {})[key] = value
  return out


def recorded_groups(report: dict | None) -> list[str]:
  """Evaluation groups a metrics.json holds (measured or skipped with a reason), in suite order."""
  report = report or {}
  names = set((report.get("protocol") or {})) | set(report.get("groups") or {})
  return [g for g in EVAL_SUITES if g in names]


def expected_groups(run: RunInfo, overrides: Sequence[str] = ()) -> list[str]:
  """The groups eval.py would evaluate for this run: its config's eval.suites with `overrides` applied; [] when
  the saved config does not say (a config older than eval.suites)."""
  suites = _get(run.config, "eval.suites")
  if suites is None:
    return []
  holder = config_lib.ConfigDict({"eval": {"suites": tuple(suites)}})
  config_lib.apply_overrides(holder, [o for o in overrides
                                      if o.partition("=")[0].strip().removeprefix("config.") == "eval.suites"])
  return [g for g in holder.eval.suites if g in EVAL_SUITES]


def missing_groups(run: RunInfo, overrides: Sequence[str] = ()) -> list[str]:
  """Groups the run's config asks for that its eval/metrics.json lacks (an earlier partial evaluation). A file
  with no grouped protocol at all (written before eval.py grouped them) is taken as complete."""
  have = recorded_groups(run.eval)
  if run.eval is None or not have:
    return []
  return [g for g in expected_groups(run, overrides) if g not in have]


def _median(values: list[float]) -> float | None:
  values = [v for v in values if v is not None and math.isfinite(v)]
  return statistics.median(values) if values else None


def _last(rows: list[dict], key: str) -> float | None:
  _, values = curves_lib.series(rows, key)
  finite = [v for v in values if math.isfinite(v)]
  return finite[-1] if finite else None


def _arch(cfg: dict, caps: dict) -> str:
  """The architecture in a few words, from the config's model section; which widths matter follows the family's
  capabilities (a discriminator: G/D widths; an encoder: its conv features)."""
  m = cfg.get("model", {})
  arch = m.get("arch", "?")
  if arch == "mlp":
    text = "mlp " + "-".join(str(h) for h in m.get("hidden", ()))
  elif not caps.get("has_discriminator"):
    text = f"{arch} " + "-".join(str(h) for h in m.get("features", ()))
  else:
    text = f"{arch} G{m.get('g_width', '?')}/D{m.get('d_width', '?')}"
    if caps.get("has_encoder"):
      text += " E" + "-".join(str(h) for h in m.get("features", ()))
  text += f", z={m.get('latent_dim', '?')}"
  if m.get("spectral_norm"):
    text += ", SN"
  if m.get("conditional"):
    text += ", conditional"
  return text


def _objective(cfg: dict, caps: dict) -> str:
  """The training objective in a few words: the likelihood bound of a family with a pixel likelihood, the GAN
  loss of one with a discriminator (after the VAE-GAN weight when the config has that section)."""
  if caps.get("has_likelihood"):
    o = cfg.get("objective", {})
    text = f"{o.get('name', '?')} k={o.get('num_samples', '?')}, {_get(cfg, 'model.likelihood', '?')} likelihood"
    if o.get("beta", 1.0) != 1.0:
      text += f", beta={o['beta']}"
    if o.get("free_bits", 0.0):
      text += f", free bits={o['free_bits']}"
    if o.get("gradient", "reparam") != "reparam":
      text += f", {o['gradient']} gradient"
    return text
  if not caps.get("has_discriminator"):
    return str(_get(cfg, "objective.name", "?"))
  g = cfg.get("gan", {})
  text = f"{g.get('loss', '?')} GAN loss"
  for key, label in (("gp_weight", "GP"), ("r1_weight", "R1"), ("clip_value", "clip")):
    if g.get(key):
      text += f", {label}={g[key]}"
  if g.get("n_critic", 1) != 1:
    text += f", n_critic={g['n_critic']}"
  if caps.get("has_encoder") and "vaegan" in cfg:
    text = f"VAE-GAN gamma={_get(cfg, 'vaegan.gamma', '?')}, " + text
  return text


def checkpoint_params(path: pathlib.Path, step: int | None = None) -> dict | None:
  """`count_params` of a run's checkpoint (`step`, else the newest one readable), read from orbax's array metadata:
  shapes only, no array data. None when there is no readable checkpoint."""
  steps = sorted((int(p.name) for p in (path / "checkpoints").glob("*") if p.name.isdigit()), reverse=True)
  if step is not None and step in steps:
    steps = [step] + [s for s in steps if s != step]
  for candidate in steps:
    state_dir = path / "checkpoints" / str(candidate) / "state"
    if not (state_dir / "_METADATA").is_file():
      continue
    try:
      import orbax.checkpoint as ocp  # noqa: PLC0415 (a second of import time: only for runs that need it)
      from etils import epath  # noqa: PLC0415
      metadata = ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir))
      tree = getattr(metadata, "tree", metadata)
      models = tree["models"]
      counted = count_params({name: m["params"] for name, m in models.items()})
    except Exception:  # noqa: BLE001 - orbax raises many types for a damaged or foreign checkpoint
      continue
    if counted["total"] > 0:
      return dict(counted, step=candidate, source="checkpoint metadata")
  return None


def run_params(run: RunInfo) -> dict | None:
  """The parameter count of a run: {"total", "per_network", ...}. As eval.py recorded it (eval/metrics.json
  'params'), else from the checkpoint of the evaluated step (or the newest one), else None."""
  ev = run.eval or {}
  recorded = ev.get("params")
  if isinstance(recorded, dict) and isinstance(recorded.get("total"), (int, float)):
    return recorded
  step = ev.get("step")
  return checkpoint_params(run.path, step if isinstance(step, int) else None)


def _first(*values):
  return next((v for v in values if v is not None), None)


def _checkpoint_meta(path: pathlib.Path) -> dict:
  """The JSON metadata of the newest complete checkpoint (training wall time, devices) of a run that has not
  been evaluated yet; {} when there is none or it cannot be read (orbax layout: <step>/meta/metadata)."""
  steps = sorted((int(p.name) for p in (path / "checkpoints").glob("*") if p.name.isdigit()), reverse=True)
  for step in steps:
    meta = path / "checkpoints" / str(step) / "meta" / "metadata"
    try:
      data = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
      continue
    if isinstance(data, dict):
      return dict(data, step=data.get("step", step))
  return {}


def training_summary(run: RunInfo) -> dict:
  cfg, ev = run.config, run.eval or {}
  train = ev.get("train") or {}
  steps_per_sec = curves_lib.series(run.rows, "steps_per_sec")[1]
  examples_per_sec = curves_lib.series(run.rows, "examples_per_sec")[1]
  meta = _checkpoint_meta(run.path) if not train else {}
  device_kind = train.get("device_kind") or meta.get("device_kind")
  num_devices = train.get("num_devices") or meta.get("num_devices")
  steps = _first(train.get("steps"), meta.get("step"), run.rows[-1]["step"] if run.rows else None)
  wall = _first(num(train.get("wall_seconds")), num(meta.get("train_wall_seconds")), _last(run.rows, "wall_seconds"))
  params = run_params(run) or {}
  return {
      "family": run.family, "dataset": run.dataset,
      "arch": _arch(cfg, run.capabilities), "objective": _objective(cfg, run.capabilities),
      "params": params.get("total"), "params_per_network": params.get("per_network") or {},
      "batch_size": _get(cfg, "data.batch_size"), "steps": steps, "wall_seconds": wall,
      "median_steps_per_sec": _median(steps_per_sec), "median_examples_per_sec": _median(examples_per_sec),
      "device": f"{num_devices}x {device_kind}" if device_kind else None,
      "eval_wall_seconds": num(ev.get("eval_wall_seconds")),
      "eval_hardware": ev.get("eval_hardware"), "status": run.status,
      "during_training": during_training_summary(run.rows),
  }


def during_training_summary(rows: list[dict]) -> str | None:
  """The sample-quality curve logged during training (split 'eval') in one line: where it ended and where it
  was best. A final value far from the best is the sign of an unstable run."""
  for key, best_of in (("fd_classifier", min), ("modes_covered", max)):
    steps, values = curves_lib.series(rows, key, split="eval")
    points = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    if points:
      best_step, best = best_of(points, key=lambda p: p[1])
      fmt = (lambda v: f"{v:.1f}") if key == "fd_classifier" else (lambda v: f"{v:.0f}")
      return (f"{key} {fmt(points[-1][1])} at the end (step {points[-1][0]}), best {fmt(best)} at step {best_step}; "
              f"{len(points)} evaluations")
  return None


# --------------------------------------------------------------------------- assets


def slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "run"


def _latest_training_image(run: RunInfo, kind: str) -> tuple[pathlib.Path, int] | None:
  best = None
  for p in (run.path / "images").glob(f"{kind}_*.png"):
    m = re.fullmatch(re.escape(kind) + r"_(\d+)\.png", p.name)
    if m and (best is None or int(m.group(1)) > best[1]):
      best = (p, int(m.group(1)))
  return best


def _eval_image(run: RunInfo, kind: str) -> pathlib.Path | None:
  recorded = ((run.eval or {}).get("images") or {}).get(kind)
  if not recorded:
    return None
  recorded = pathlib.Path(recorded)
  for candidate in (recorded, run.path / "eval" / recorded.name, run.path / recorded):
    if candidate.is_file():
      return candidate
  return None


def collect_images(run: RunInfo, out_dir: pathlib.Path) -> dict[str, dict]:
  """Copies each image kind of a run into assets/: {kind: {"path": relative, "source": words}}."""
  found = {}
  for kind, _ in IMAGE_KINDS:
    src = _eval_image(run, kind)
    if src is not None:
      source = f"evaluation, step {(run.eval or {}).get('step', '?')}"
    else:
      latest = _latest_training_image(run, kind)
      if latest is None:
        continue
      src, step = latest
      source = f"training, step {step}"
    rel = f"{run.asset_dir}/{kind}.png"
    shutil.copyfile(src, out_dir / rel)
    found[kind] = {"path": rel, "source": source, "original": str(src)}
  return found
