"""A metric of metrics.json as text, the way eval.py's summary and the comparison report show it (no JAX needed)."""
from __future__ import annotations

from gen_jax.eval import metric_specs as specs


def cell_text(name: str, metrics: dict, floors: bool = True) -> str:
  """A metric as the report prints it: value, '± std' ('± n/a' when the std is recorded as not measurable, e.g. KID
  from a single subset), and with `floors` its real-data floor and reference."""
  spec = specs.spec_or_unknown(name)
  if name not in metrics:
    return "—"
  text = specs.format_value(name, metrics[name])
  if spec.std and spec.std in metrics:
    std = metrics[spec.std]
    text += " ± n/a" if std is None else f" ± {specs.format_value(name, std)}"
  if not floors:
    return text
  if spec.floor and spec.floor in metrics:
    text += f" (floor {specs.format_value(name, metrics[spec.floor])})"
  if spec.reference and spec.reference in metrics:
    text += f" ({spec.reference_label} {specs.format_value(name, metrics[spec.reference])})"
  return text
