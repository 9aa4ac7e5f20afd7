"""`<workdir>/eval/metrics.json` across evaluations: merging a partial evaluation into the file of an earlier one.

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
from typing import Sequence

from gen_jax.eval import metric_specs as specs
from gen_jax.eval.suite import GROUPS


def now() -> str:
  """The time an evaluation is recorded with (UTC)."""
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def read_previous(path: pathlib.Path) -> tuple[dict | None, str | None]:
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
  if _same_checkpoint(previous, new) is None:   # a group skipped now never erases its measured results
    lost = [g for g, r in new["groups"].items()
            if r.get("skipped") and g in old_groups and not old_groups[g].get("skipped")]
    if lost:
      reasons = "; ".join(f"{g}: {(new['protocol'].get(g) or {}).get('skipped', 'skipped')}" for g in lost)
      notes.append(f"{', '.join(lost)} could not be evaluated now ({reasons}); the earlier results of this "
                   "checkpoint are kept")
      new = _without_groups(new, lost)
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
                merged=(f"{', '.join(g for g in groups if g in replaced) or 'no group'} evaluated {now()}; "
                        f"{', '.join(kept)} kept from an earlier evaluation of the same checkpoint (step "
                        f"{new['step']}): 'groups' says when and with which overrides each was evaluated"))
  return merged, notes


def _without_groups(report: dict, groups: Sequence[str]) -> dict:
  """`report` as if `groups` (skipped ones: no metrics of their own) had not been asked for."""
  drop = set(groups)
  return dict(report, groups={g: r for g, r in report["groups"].items() if g not in drop},
              protocol={k: v for k, v in report["protocol"].items() if k not in drop},
              eval_group_seconds={g: v for g, v in report["eval_group_seconds"].items() if g not in drop},
              last_evaluated_groups=[g for g in report.get("last_evaluated_groups", ()) if g not in drop])
