"""Honest ranking: which model is "best" on a metric, and which models are marked instead of ranked.

One rule for every report (the comparison report, gen_jax/report/build.py; the study report):

  direction   better = the metric's arrow in gen_jax/eval/metric_specs.py; unranked metrics crown nobody.
  baseline    a model no better than the metric's trivial baseline (`baseline_of`: imputation vs filling with the
              mean training image; generated-data augmentation vs the real subset alone; test NLL vs independent
              pixels, each its own training histogram) is marked and never best.
  gate        a metric that rewards degenerate models is ranked only among models that pass a gate on another
              metric (GATES: latent smoothness only among models whose recall >= RECALL_THRESHOLD, since a
              collapsed generator has the shortest paths); the others are marked "collapsed/low recall".
  conditional a likelihood (NLL, ELBO) of a conditional model is -log p(x|y), up to log(classes) nats below the
              -log p(x) of an unconditional one: where both kinds are in a table, the conditional models' values
              are marked and not ranked against the others (CONDITIONAL_LIKELIHOOD).
  best        among the unmarked models, the best value (mean over seeds) wins, ties all win; nobody wins when
              fewer than two models have a value or all values are equal.

`rule_lines(metric names)` states the rules that apply to a table, for the line under it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

from gen_jax.eval import metric_specs as specs

RECALL_THRESHOLD = 0.5
IMPUTE_PREFIX = "impute_mse_"
# Likelihood metrics that mean p(x|y) for a conditional model and p(x) otherwise.
CONDITIONAL_LIKELIHOOD = ("nll", "nll_bits_per_dim", "elbo", "elbo_bits_per_dim")
CONDITIONAL_MARK = "conditional: -log p(x|y), not comparable to -log p(x)"


@dataclasses.dataclass(frozen=True)
class Verdict:
  """best: the model wins the metric; marked: why it is excluded from ranking (None: ranked normally)."""
  best: bool = False
  marked: str | None = None


def baseline_of(metric_key: str) -> tuple[str, str] | None:
  """(the trivial baseline's metric name, its label) of a metric, or None if it has none."""
  if metric_key.startswith(IMPUTE_PREFIX) and not metric_key.endswith("_meanfill"):
    kind = metric_key[len(IMPUTE_PREFIX):].split("_")[0]
    return f"{IMPUTE_PREFIX}{kind}_meanfill", "mean fill"
  if metric_key == "real_subset_plus_generated_accuracy":
    return "real_subset_accuracy", "the real subset alone"
  if metric_key in ("nll", "nll_bits_per_dim"):
    return f"{metric_key}_independent", "independent pixels"
  return None


def gate_of(metric_key: str) -> tuple[str, float, str] | None:
  """(gating metric, threshold it must reach, what failing it means) of a metric, or None."""
  if metric_key.startswith("ppl_"):
    return "recall", RECALL_THRESHOLD, "collapsed/low recall"
  return None


def _mean(values) -> float | None:
  if values is None:
    return None
  if isinstance(values, (int, float)):
    values = [values]
  finite = [float(v) for v in values if v is not None and not isinstance(v, bool) and math.isfinite(float(v))]
  return sum(finite) / len(finite) if finite else None


def judge(metric_key: str, per_model_values: Mapping[str, Sequence[float]], baselines: Mapping[str, float],
          context: Mapping) -> dict[str, Verdict]:
  """A Verdict for every model of `per_model_values` ({model: its values, one per seed}) on `metric_key`.

  baselines: {model: the value of the metric's trivial baseline for that model's runs} (see `baseline_of`; a model
  missing here is not checked against a baseline). context: {gating metric name: {model: value or values}} (see
  `gate_of`, e.g. {"recall": {...}}); a model whose gating value is missing is marked too ("not measured").
  context["conditional"]: {model: whether it is a conditional model} for the CONDITIONAL_LIKELIHOOD rule (a model
  missing there counts as unconditional).
  """
  spec = specs.spec_or_unknown(metric_key)
  means = {m: _mean(v) for m, v in per_model_values.items()}
  verdicts = {m: Verdict() for m in per_model_values}
  if not spec.ranked:
    return verdicts
  lower = spec.direction == specs.LOWER
  base = baseline_of(metric_key)
  gate = gate_of(metric_key)
  conditional = {m: bool((context.get("conditional") or {}).get(m)) for m in per_model_values}
  mixed = metric_key in CONDITIONAL_LIKELIHOOD and len({conditional[m] for m, x in means.items() if x is not None}) > 1
  for m, x in means.items():
    if x is None:
      continue
    if mixed and conditional[m]:
      verdicts[m] = Verdict(marked=CONDITIONAL_MARK)
      continue
    b = _mean(baselines.get(m))
    if base is not None and b is not None and not (x < b if lower else x > b):
      verdicts[m] = Verdict(marked=f"no better than {base[1]} ({specs.format_value(metric_key, b)})")
      continue
    if gate is not None:
      name, threshold, meaning = gate
      g = _mean((context.get(name) or {}).get(m))
      if g is None:
        verdicts[m] = Verdict(marked=f"{name} not measured: not ranked")
      elif g < threshold:
        verdicts[m] = Verdict(marked=f"{meaning} ({name} {g:.3f} < {threshold:g})")
  finite = {m: x for m, x in means.items() if x is not None}
  if len(finite) < 2 or len(set(finite.values())) == 1:
    return verdicts
  eligible = {m: x for m, x in finite.items() if verdicts[m].marked is None}
  if not eligible:
    return verdicts
  if spec.target is not None:
    score = {m: abs(x - spec.target) for m, x in eligible.items()}
    top = min(score.values())
  else:
    score = dict(eligible)
    top = min(score.values()) if lower else max(score.values())
  for m, s in score.items():
    if s == top:
      verdicts[m] = Verdict(best=True)
  return verdicts


def judge_runs(metric_key: str, per_model_metrics: Mapping[str, Sequence[Mapping]],
               conditional: Mapping[str, bool] | None = None) -> dict[str, Verdict]:
  """`judge` from each model's metrics dicts ({model: [metrics of each seed's run]}): values, baselines and
  gating metrics are read from the same runs; `conditional`: {model: whether it is a conditional model} (its
  capabilities), for the conditional-likelihood rule."""
  values = {m: [r.get(metric_key) for r in runs] for m, runs in per_model_metrics.items()}
  baselines, context = {}, {}
  base = baseline_of(metric_key)
  if base is not None:
    for m, runs in per_model_metrics.items():
      b = _mean([r.get(base[0]) for r in runs])
      if b is not None:
        baselines[m] = b
  gate = gate_of(metric_key)
  if gate is not None:
    context[gate[0]] = {m: [r.get(gate[0]) for r in runs] for m, runs in per_model_metrics.items()}
  if conditional:
    context["conditional"] = dict(conditional)
  return judge(metric_key, values, baselines, context)


def rule_lines(metric_keys) -> list[str]:
  """The ranking rules that apply to these metrics, one sentence each, for the line under a table."""
  keys = list(metric_keys)
  out = ["Best = the better mean over seeds by the metric's arrow, ties all best, among unmarked models "
         "(gen_jax/report/ranking.py)."]
  if any(baseline_of(k) and baseline_of(k)[1] == "mean fill" for k in keys):
    out.append("Imputation: a model no better than filling the missing pixels with the mean training image is "
               "marked and never best.")
  if any(baseline_of(k) and baseline_of(k)[1] == "the real subset alone" for k in keys):
    out.append("Augmentation: real subset + generated accuracy no better than the real subset alone is marked.")
  if any(baseline_of(k) and baseline_of(k)[1] == "independent pixels" for k in keys):
    out.append("Likelihood: a model whose test NLL is no better than every pixel modelled on its own (its "
               "training histogram; per class for a conditional model) is marked and never best.")
  if any(k in CONDITIONAL_LIKELIHOOD for k in keys):
    out.append("Likelihoods: a conditional model's NLL / ELBO is -log p(x|y) (at most log(classes) nats below its "
               "-log p(x)); beside unconditional models it is marked 'conditional', not ranked.")
  if any(gate_of(k) for k in keys):
    out.append(f"Latent smoothness (path length) is ranked only among models with recall >= {RECALL_THRESHOLD:g}; "
               "a collapsed generator has the shortest paths, so the others are marked 'collapsed/low recall'.")
  return out
