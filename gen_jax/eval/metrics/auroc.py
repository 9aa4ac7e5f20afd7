"""Area under the ROC curve from scores, as the Mann-Whitney U statistic.

AUROC = P(score of a random anomaly > score of a random normal example) + 1/2 P(equal), which is
U / (n_anomalies * n_normal) with U computed from average ranks (ties share their mean rank). This is
exact (no thresholds, no interpolation) and O(N log N); it equals the trapezoidal area under the ROC
curve. Convention: a higher score means "more anomalous".
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def auroc(scores, is_anomaly) -> float:
  """AUROC of `scores` [N] (higher = more anomalous) for the boolean labels `is_anomaly` [N].

  1.0: every anomaly scores above every normal example; 0.5: chance (or all scores equal); 0.0: reversed.
  Raises ValueError if the shapes differ, a score is NaN/Inf, or only one of the two groups is present.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  labels = np.asarray(is_anomaly).reshape(-1)
  if scores.shape != labels.shape:
    raise ValueError(f"auroc: {scores.shape[0]} scores but {labels.shape[0]} labels; give one label per score.")
  if labels.dtype != np.bool_:
    if not np.all(np.isin(labels, (0, 1))):
      raise ValueError("auroc: is_anomaly must be boolean (or 0/1); found other values.")
    labels = labels.astype(bool)
  if not np.all(np.isfinite(scores)):
    bad = int(np.sum(~np.isfinite(scores)))
    raise ValueError(f"auroc: {bad} of {scores.size} scores are NaN/Inf; the model's scores are not usable "
                     "(check the checkpoint for NaN parameters).")
  n_pos = int(labels.sum())
  n_neg = int(labels.size - n_pos)
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"auroc needs both anomalies and normal examples; got {n_pos} anomalies and {n_neg} normal. "
                     "Fix: score a set that holds both (e.g. a larger test split).")
  ranks = stats.rankdata(scores, method="average")
  u = float(np.sum(ranks[labels])) - n_pos * (n_pos + 1) / 2.0
  return u / (n_pos * n_neg)
