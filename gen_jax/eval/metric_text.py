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


# The likelihood metrics as (unit, model metric, no-model baseline metric).
_NLL_UNITS = (("bits/dim", "nll_bits_per_dim", "nll_bits_per_dim_independent"),
              ("nats", "nll", "nll_independent"))


def nll_text(metrics: dict, binarized: bool = False, baseline: str = "independent pixels") -> str:
  """The test NLL with its independent-pixels baseline beside it, e.g. '8.0570 bits/dim (independent pixels
  7.8702; 17156.15 vs 16758.33 nats)': bits/dim first for grey or colour pixels (how the README and image-model
  papers quote it), nats first for `binarized` data (how binarized-MNIST papers do); no ', ' inside (the console
  wraps at those). `baseline`: the baseline's name (a conditional model's is fitted per class)."""
  units = [u for u in (_NLL_UNITS[::-1] if binarized else _NLL_UNITS) if u[1] in metrics]
  if not units:
    return "—"
  (unit, model, base), rest = units[0], units[1:]
  extra = [f"{baseline} {specs.format_value(base, metrics[base])}"] if base in metrics else []
  for unit2, model2, base2 in rest:
    other = f" vs {specs.format_value(base2, metrics[base2])}" if base2 in metrics else ""
    extra.append(f"{specs.format_value(model2, metrics[model2])}{other} {unit2}")
  value = f"{specs.format_value(model, metrics[model])} {unit}"   # nats only: no pixel count (2-D toy data)
  return value + (f" ({'; '.join(extra)})" if extra else "")


def no_spread_reason(name: str, group_protocol: dict | None) -> str:
  """Why a metric's '± std' is 'n/a', in a few words, from its group's recorded protocol (KID: one subset because
  eval.num_samples <= eval.kid_subset_size, or one subset asked for; gen_jax/eval/metrics/kid.py writes the text);
  "" when the protocol does not say."""
  text = str((group_protocol or {}).get(name) or "")
  if "one subset: all" in text:
    return "a single subset: eval.num_samples <= eval.kid_subset_size"
  if "1 subset of" in text:
    return "a single subset: eval.kid_subsets = 1"
  return ""
