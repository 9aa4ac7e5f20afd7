"""What eval.py prints after evaluating a run: per group its protocol in brief and its key numbers."""
from __future__ import annotations

import pathlib

from gen_jax.eval import metric_specs as specs
from gen_jax.eval.metrics_file import evaluated_groups
from gen_jax.eval.metric_text import cell_text


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


def protocol_brief(entry: dict) -> str:
  """The protocol of one group in a few words (split, counts, reference, classifier hash, EMA or raw weights)."""
  parts = [fmt.format(entry[key]) for key, fmt in _BRIEF_FIELDS if entry.get(key) not in (None, "")]
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
      brief = protocol_brief(entry)
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
