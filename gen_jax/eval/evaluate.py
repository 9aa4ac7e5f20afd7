"""Evaluate a trained run: restore a checkpoint, run the evaluation suite, write `<workdir>/eval/metrics.json`.

metrics.json: {"step", "metrics": {name: number}, "protocol": {"seed", "dataset", "dataset_source", <group>: {...}},
"groups": {<group>: {"step", "evaluated_at", "metrics": [names], "seconds", "overrides", "eval_devices"}},
"last_evaluated_groups": [groups the latest eval.py call measured], "params": {"total", "per_network"}, ...}
with one protocol entry per group of `gen_jax/eval/suite.py` (or {"skipped": reason}).

A partial evaluation (`--config.eval.suites="('likelihood',)"`) of the checkpoint an existing metrics.json was
measured on is merged into it: the groups evaluated now replace their own metrics and protocol, the other groups are
kept, and "groups" says when each was evaluated (and with which overrides). A different checkpoint step (or another
run's file) replaces the file, with a note naming the groups that were dropped.
"""
from __future__ import annotations

import datetime
import json
import pathlib
import platform
import sys
import time
from typing import Any, Sequence

import jax

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.errors import CheckpointError, GenJaxError
from gen_jax.eval import metric_specs as specs
from gen_jax.eval.report_runs import cell_text, count_params
from gen_jax.eval.suite import GROUPS, Suite
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.loop import setup, write_images

GENERAL_KEYS = ("seed", "dataset", "dataset_source")   # protocol entries shared by every group


def hardware_description() -> dict:
  devices = jax.devices()
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "num_devices": len(devices),
          "num_processes": jax.process_count(), "jax_version": jax.__version__, "machine": platform.machine(),
          "processor": platform.processor() or platform.machine()}


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run_groups(suite: Suite, groups: Sequence[str]) -> dict[str, dict]:
  """{group: {"metrics", "protocol", "seconds"}}, one group at a time on one Suite (so the classifier is loaded
  once); each group draws from its own key (rng.for_purpose(key, group)), whatever else runs."""
  out: dict[str, dict] = {}
  seen: dict[str, str] = {}
  for group in groups:
    result = suite.run_groups((group,))
    clash = sorted(set(result["metrics"]) & set(seen))
    if clash:
      raise GenJaxError(f"evaluation group {group!r} reports metrics already reported by "
                        f"{seen[clash[0]]!r}: {clash}")
    seen.update({name: group for name in result["metrics"]})
    out[group] = {"metrics": result["metrics"], "protocol": result["protocol"][group],
                  "seconds": result["seconds"][group]}
  return out


def evaluate_workdir(workdir: str | pathlib.Path, step: int | None = None, overrides: Sequence[str] = (),
                     progress: bool = True) -> dict:
  """Evaluates the groups of config.eval.suites on a checkpoint of `workdir` and writes eval/metrics.json (merged
  with the groups of an earlier evaluation of the same checkpoint, see the module docstring). Returns the report
  as written."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise CheckpointError(f"workdir {workdir} does not exist; train first: "
                          f"python train.py --config=configs/vae.py --workdir={workdir}")
  config = config_lib.load_saved_config(workdir / "config.json")
  config_lib.apply_overrides(config, overrides)
  run = setup(config)
  ckpts = Checkpoints(workdir, async_save=False)
  try:
    restored = ckpts.restore_latest_good(run.abstract_state(), step)
  finally:
    ckpts.close()
  if restored is None:
    raise CheckpointError(f"no checkpoint in {workdir / 'checkpoints'}; train first "
                          f"(python train.py --config=... --workdir={workdir})")
  state, meta, restored_step = restored
  t0 = time.time()
  suite = Suite(run, state.models, run.keys["eval"], config.eval, int(config.seed), progress=progress)
  per_group = _run_groups(suite, tuple(config.eval.get("suites", GROUPS)))
  devices = suite.placement.describe()
  out_dir = workdir / "eval"
  images = write_images(run, state.models, out_dir, restored_step)
  when = _now()
  metrics: dict[str, Any] = {}
  for result in per_group.values():
    metrics.update(result["metrics"])
  report = {
      "workdir": str(workdir),
      "step": restored_step,
      "checkpoint": str(ckpts.directory / str(restored_step)),
      "family": run.family.name,
      "config": config_lib.to_dict(config),
      "metrics": metrics,
      "protocol": dict({g: r["protocol"] for g, r in per_group.items()}, seed=int(config.seed),
                       dataset=run.dataset.name, dataset_source=run.dataset.source),
      "groups": {g: {"step": restored_step, "evaluated_at": when, "metrics": list(r["metrics"]),
                     "seconds": r["seconds"], "overrides": list(overrides), "eval_devices": devices}
                 | ({"skipped": True} if "skipped" in r["protocol"] else {})
                 for g, r in per_group.items()},
      "eval_group_seconds": {g: r["seconds"] for g, r in per_group.items()},
      "last_evaluated_groups": list(per_group),   # by the eval.py call that wrote the file; see "groups"
      "params": count_params({name: m.params for name, m in state.models.items()}),
      "train": {"steps": restored_step, "wall_seconds": meta.get("train_wall_seconds"),
                "device_kind": meta.get("device_kind"), "num_devices": meta.get("num_devices")},
      "eval_hardware": dict(hardware_description(), eval_devices=devices),
      "eval_wall_seconds": time.time() - t0,
      "images": images,
  }
  if parallel.is_main_process():
    path = out_dir / "metrics.json"
    previous, problem = _read_previous(path)
    report, notes = merge_reports(previous, report, problem)
    for note in notes:
      print(f"note: {path}: {note}", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
  return report


# --------------------------------------------------------------------------- merging with an earlier evaluation


def _read_previous(path: pathlib.Path) -> tuple[dict | None, str | None]:
  if not path.is_file():
    return None, None
  try:
    data = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    return None, f"the earlier file could not be read ({type(e).__name__}: {e}) and was replaced"
  return (data, None) if isinstance(data, dict) else (None, "the earlier file was not a JSON object; replaced")


def evaluated_groups(report: dict) -> dict[str, dict]:
  """{group: record} of a metrics.json: its "groups" records, or for a file written before eval.py kept them,
  records rebuilt from its protocol (metrics attributed to groups by gen_jax/eval/metric_specs.py)."""
  if isinstance(report.get("groups"), dict):
    return {g: r for g, r in report["groups"].items() if isinstance(r, dict)}
  protocol = report.get("protocol") or {}
  out = {}
  for group, entry in protocol.items():
    if group in GROUPS and isinstance(entry, dict):
      out[group] = {"step": report.get("step"), "evaluated_at": None,
                    "metrics": [n for n in (report.get("metrics") or {}) if specs.group_of(n) == group],
                    "seconds": (report.get("eval_group_seconds") or {}).get(group),
                    "eval_devices": (report.get("eval_hardware") or {}).get("eval_devices"),
                    "note": "written before eval.py kept per-group records"}
      if "skipped" in entry:
        out[group]["skipped"] = True
  return out


def _same_checkpoint(previous: dict, new: dict) -> str | None:
  """None when `previous` measured the checkpoint `new` did; else why not (for the note)."""
  if previous.get("step") != new["step"]:
    return f"they are from step {previous.get('step')}, this evaluation is of step {new['step']}"
  if previous.get("family") not in (None, new["family"]):
    return f"they are of a {previous.get('family')} model, this run is a {new['family']}"
  old_p, new_p = previous.get("protocol") or {}, new["protocol"]
  for key in ("dataset", "seed"):
    if key in old_p and old_p[key] != new_p[key]:
      return f"they were measured with {key} {old_p[key]!r}, this evaluation with {new_p[key]!r}"
  old_wall, new_wall = (previous.get("train") or {}).get("wall_seconds"), new["train"]["wall_seconds"]
  if old_wall is not None and new_wall is not None and old_wall != new_wall:
    return (f"step {new['step']} was trained again since (training wall time {old_wall} s then, {new_wall} s in "
            "today's checkpoint)")
  return None


def _suites_flag(groups: Sequence[str]) -> str:
  return f'--config.eval.suites="{tuple(groups)!r}"'


def merge_reports(previous: dict | None, new: dict, problem: str | None = None) -> tuple[dict, list[str]]:
  """(report to write, notes). Groups of `previous` that `new` did not evaluate are kept when both measured the
  same checkpoint (same step, family, dataset, seed and training wall time); otherwise `new` replaces the file and
  a note names the groups dropped, with the command that evaluates them again."""
  notes = [problem] if problem else []
  if previous is None:
    return new, notes
  old_groups = evaluated_groups(previous)
  kept = [g for g in GROUPS if g in old_groups and g not in new["groups"]]
  kept += [g for g in old_groups if g not in GROUPS and g not in new["groups"]]
  if not kept:
    return new, notes
  differs = _same_checkpoint(previous, new)
  if differs:
    notes.append(f"the earlier results of {', '.join(kept)} were dropped: {differs}. To evaluate them again: "
                 f"python eval.py --workdir={new['workdir']} --step={new['step']} {_suites_flag(kept)}")
    return new, notes
  replaced = set(new["groups"])
  owned = {name: g for g, record in old_groups.items() for name in record.get("metrics") or ()}
  old_metrics = previous.get("metrics") or {}
  metrics = {n: v for n, v in old_metrics.items() if owned.get(n) not in replaced and n not in new["metrics"]}
  metrics.update(new["metrics"])
  old_protocol = previous.get("protocol") or {}
  groups = {g: old_groups[g] for g in kept} | new["groups"]
  order = {g: i for i, g in enumerate(GROUPS)}
  groups = dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order))))
  protocol = {g: (new["protocol"][g] if g in replaced else old_protocol[g]) for g in groups
              if g in replaced or g in old_protocol}
  protocol.update({k: new["protocol"][k] for k in new["protocol"] if k not in GROUPS})
  seconds = {g: (previous.get("eval_group_seconds") or {}).get(g) for g in kept}
  merged = dict(new, metrics=metrics, protocol=protocol, groups=groups,
                eval_group_seconds={g: (new["eval_group_seconds"][g] if g in replaced else seconds.get(g))
                                    for g in groups},
                eval_wall_seconds=new["eval_wall_seconds"] + sum(v for v in seconds.values() if v),
                merged=(f"{', '.join(g for g in groups if g in replaced) or 'no group'} evaluated {_now()}; "
                        f"{', '.join(kept)} kept from an earlier evaluation of the same checkpoint (step "
                        f"{new['step']}): 'groups' says when and with which overrides each was evaluated"))
  return merged, notes


# --------------------------------------------------------------------------- what eval.py prints


def _key_metric(name: str) -> bool:
  """Metrics of the printed summary: not a twin (floor, std, reference), not a restatement, not a count of the
  protocol (num_examples, ...)."""
  spec = specs.spec_or_unknown(name)
  return name not in specs.TWINS and not spec.derived and not name.startswith("num_")


# Protocol fields shown in a group's printed line, in this order: (key, how to show its value).
_BRIEF_FIELDS = (
    ("split", "{} split"), ("num_examples", "{} images"), ("num_importance_samples", "k={}"),
    ("num_samples", "{} samples"), ("reference", "vs {}"), ("num_pairs_prior", "{} path pairs"),
    ("steps", "{} steps"), ("feature_network_sha256", "classifier {:.12}"), ("test_examples", "{} real test images"),
)
_BRIEF_SKIP = {"cas": ("reference",)}   # cas's "reference" is what its accuracies compare with, not a data set


def protocol_brief(entry: dict, group: str = "") -> str:
  """The protocol of one group in a few words (split, counts, reference, classifier hash, EMA or raw weights)."""
  skip = _BRIEF_SKIP.get(group, ())
  parts = [fmt.format(entry[key]) for key, fmt in _BRIEF_FIELDS
           if key not in skip and entry.get(key) not in (None, "")]
  weights = entry.get("params", entry.get("params_kind"))
  if weights in ("ema", "raw"):
    parts.append(f"{weights} weights")
  return ", ".join(parts)


def summary_lines(report: dict, path: str | pathlib.Path, width: int = 118) -> list[str]:
  """A few lines for the terminal: per group its protocol in brief and its key numbers (name = value), or why it
  was skipped, and when it was evaluated if not now; the step, dataset and seed; where every number is, with its
  full protocol."""
  metrics = report.get("metrics") or {}
  groups = evaluated_groups(report)
  now = set(report.get("last_evaluated_groups", groups))
  protocol = report.get("protocol") or {}
  general = ", ".join(f"{k} {protocol[k]}" for k in ("dataset", "seed") if k in protocol)
  lines = [f"{report.get('workdir', '')}: step {report.get('step')}" + (f", {general}" if general else "")
           + (f", {report['params']['total']:,} parameters" if isinstance(report.get("params"), dict) else "")]
  if not groups and metrics:   # a file from before per-group protocols: one flat protocol for all its numbers
    groups = {"metrics": {"metrics": list(metrics)}}
    protocol = dict(protocol, metrics=protocol)
  for group, record in groups.items():
    head = f"  {group:<10} "
    entry = protocol.get(group) or {}
    if record.get("skipped") or "skipped" in entry:
      body = f"skipped: {entry.get('skipped', '')}"
    else:
      names = [n for n in record.get("metrics") or () if n in metrics]
      shown = [n for n in names if _key_metric(n)] or names
      brief = protocol_brief(entry, group)
      items = [f"{n} = {cell_text(n, metrics, floors=False)}" for n in shown] or ["no numbers"]
      body = ", ".join(items)
      if brief:
        lines.append(f"{head}[{brief}]")
        head = " " * len(head)
    if group not in now and group != "metrics":
      body += f"  [kept from an earlier evaluation: {record.get('evaluated_at') or 'time not recorded'}]"
    lines += _pack(body, head, width)
  lines.append(f"every number, its floor and its protocol: {path}")
  return lines


def _pack(body: str, head: str, width: int) -> list[str]:
  """`body` wrapped at its ", " separators only (a "name = value" pair never splits), every line after `head`."""
  out, line = [], ""
  for item in body.split(", "):
    candidate = f"{line}, {item}" if line else item
    if line and len(head) + len(candidate) > width:
      out.append(head + line + ",")
      line = item
    else:
      line = candidate
  out.append(head + line)
  return [out[0]] + [" " * len(head) + x[len(head):] for x in out[1:]]
