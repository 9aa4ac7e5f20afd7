"""What eval.py prints after evaluating a run: per group its protocol in brief and its key numbers."""
from __future__ import annotations

import pathlib

from gen_jax.eval import metric_specs as specs
from gen_jax.eval.metrics_file import evaluated_groups
from gen_jax.eval.metric_text import cell_text, nll_text, no_spread_reason


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
  parts = [fmt.format(_head(entry[key])) for key, fmt in _BRIEF_FIELDS if entry.get(key) not in (None, "")]
  weights = entry.get("params", entry.get("params_kind"))
  if weights in ("ema", "raw"):
    parts.append(f"{weights} weights")
  return ", ".join(parts)


def _head(value):
  """A protocol value up to its first ': ' ('cifar10 test split: 1000 of 10000 images, ...' -> 'cifar10 test
  split'): the brief names the set, metrics.json has how it was drawn."""
  return value.split(": ", 1)[0] if isinstance(value, str) else value


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
      items = _items(shown, metrics, entry, _binarized(protocol)) or ["no numbers"]
      body = ", ".join(items)
      if brief:
        lines.append(f"{head}[{brief}]")
        head = " " * len(head)
    if group not in now and group != "metrics":
      body += f"  [kept from an earlier evaluation: {record.get('evaluated_at') or 'time not recorded'}]"
    lines += _pack(body, head, width)
  lines.append(f"every number, its floor and its protocol: {path}")
  return lines


def _binarized(protocol: dict) -> bool:
  """Whether the likelihood is of binarized pixels (its NLL is quoted in nats) rather than grey or colour ones
  (quoted in bits/dim): the likelihood protocol's 'binarization', else the dataset's name for older files."""
  binarization = (protocol.get("likelihood") or {}).get("binarization") if isinstance(protocol, dict) else None
  if binarization is not None:
    return str(binarization) != "none"
  return str(protocol.get("dataset", "")).startswith("binarized_")


def _items(shown: list[str], metrics: dict, entry: dict, binarized: bool) -> list[str]:
  """'name = value' per key metric. The NLL comes first, in bits/dim beside its independent-pixels baseline (nats
  for binarized data; the other unit in brackets); other log-likelihoods (ELBO, KL) say 'nats'; a '± n/a' says
  why there is no spread."""
  if "nll" in shown:
    shown = ["nll"] + [n for n in shown if n not in ("nll", "nll_independent")]
  items = []
  for n in shown:
    if n == "nll":
      per_class = specs.NLL_BASELINE_PER_CLASS in str(entry.get("baseline", ""))
      label = "independent pixels given the class" if per_class else "independent pixels"
      items.append(f"nll = {nll_text(metrics, binarized, label)}")
      continue
    spec = specs.spec_or_unknown(n)
    text = cell_text(n, metrics, floors=False) + (" nats" if spec.unit == "nats" and metrics.get(n) is not None else "")
    std = spec.std
    reason = no_spread_reason(n, entry) if std and std in metrics and metrics[std] is None else ""
    text += f" ({reason})" if reason else ""
    items.append(f"{n} = {text}")
  return items


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
