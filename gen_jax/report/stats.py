"""Statistics over seeds: intervals for one model's runs, and which differences between models are real.

  summarize      n, mean, sample standard deviation (ddof 1), and a 95% confidence interval of the mean: Student's
                 t interval mean +- t_{0.975, n-1} s / sqrt(n) (default), or a seeded percentile bootstrap
  welch          Welch's unequal-variance t-test of two models' per-seed values (two-sided p-value)
  holm           Holm's step-down correction of a family of p-values (controls the family-wise error rate)
  pairwise       every pair of models on one metric: difference of means, Welch p, Holm-adjusted p over the pairs
                 of that metric, and whether the difference is significant at alpha
"""
from __future__ import annotations

import itertools
import math
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
METHODS = ("t", "bootstrap")


def _clean(values: Sequence[float | None]) -> np.ndarray:
  return np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64)


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE, method: str = "t",
              num_bootstrap: int = 10_000, seed: int = 0) -> dict:
  """{n, mean, std, ci_low, ci_high, method}; NaN/None values are dropped (n counts the finite ones). With one
  value the spread and interval are None; with equal values the interval has zero width."""
  if method not in METHODS:
    raise ValueError(f"method {method!r} is not one of {METHODS}")
  x = _clean(values)
  n = int(x.size)
  out = {"n": n, "mean": float(x.mean()) if n else None, "std": None, "ci_low": None, "ci_high": None,
         "method": method, "confidence": confidence}
  if n < 2:
    return out
  std = float(x.std(ddof=1))
  out["std"] = std
  if method == "t":
    from scipy import stats
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
  else:
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(num_bootstrap, n))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    out["ci_low"], out["ci_high"] = float(lo), float(hi)
  return out


def welch(a: Sequence[float | None], b: Sequence[float | None]) -> dict:
  """{t, df, p} of Welch's two-sided t-test. Fewer than 2 values on a side: p is None (no test). Both sides
  without spread: p = 0 if the means differ, else 1 (the t statistic is infinite or undefined)."""
  x, y = _clean(a), _clean(b)
  if x.size < 2 or y.size < 2:
    return {"t": None, "df": None, "p": None}
  vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
  diff = float(x.mean() - y.mean())
  if vx + vy == 0:
    return {"t": None, "df": None, "p": 0.0 if diff != 0 else 1.0}
  from scipy import stats
  t = diff / math.sqrt(vx + vy)
  df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
  return {"t": float(t), "df": float(df), "p": float(2 * stats.t.sf(abs(t), df))}


def holm(pvalues: Mapping[str, float | None], alpha: float = ALPHA) -> dict[str, dict]:
  """{key: {p_adjusted, significant}}: Holm's step-down procedure over the tests that were made (p not None).
  Sorted p_(1) <= ... <= p_(m); adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)); rejected where <= alpha."""
  made = sorted(((p, k) for k, p in pvalues.items() if p is not None), key=lambda pk: (pk[0], pk[1]))
  m = len(made)
  out: dict[str, dict] = {k: {"p_adjusted": None, "significant": False} for k in pvalues}
  running = 0.0
  for i, (p, k) in enumerate(made):
    running = max(running, min(1.0, (m - i) * p))
    out[k] = {"p_adjusted": running, "significant": running <= alpha}
  return out


def pair_key(a: str, b: str) -> str:
  return f"{a} vs {b}"


def pairwise(per_model: Mapping[str, Sequence[float | None]], alpha: float = ALPHA) -> dict[str, dict]:
  """{'a vs b': {a, b, diff (mean a - mean b), p, p_adjusted, significant}} for every pair of models (in the
  order given), Holm-corrected over these pairs."""
  pairs = list(itertools.combinations(list(per_model), 2))
  tests = {pair_key(a, b): welch(per_model[a], per_model[b]) for a, b in pairs}
  corrected = holm({k: t["p"] for k, t in tests.items()}, alpha)
  out = {}
  for a, b in pairs:
    k = pair_key(a, b)
    xa, xb = _clean(per_model[a]), _clean(per_model[b])
    diff = float(xa.mean() - xb.mean()) if xa.size and xb.size else None
    out[k] = {"a": a, "b": b, "diff": diff, "p": tests[k]["p"], "t": tests[k]["t"], "df": tests[k]["df"],
              **corrected[k]}
  return out


def significantly(comparisons: Mapping[str, dict], a: str, b: str) -> dict | None:
  """The comparison of a and b (in either order) with diff as mean a - mean b; None if not compared."""
  if pair_key(a, b) in comparisons:
    return comparisons[pair_key(a, b)]
  if pair_key(b, a) in comparisons:
    c = dict(comparisons[pair_key(b, a)])
    c["a"], c["b"] = a, b
    c["diff"] = -c["diff"] if c["diff"] is not None else None
    return c
  return None
