"""Inception Score analogue from any classifier's class probabilities (Salimans et al. 2016).

With p(y|x) the classifier's predictive distribution for a generated x, and p(y) = mean_x p(y|x) over a split,

  score = exp( E_x KL( p(y|x) || p(y) ) ),

which lies in [1, K] for K classes: K when every sample is classified confidently and the classes are used uniformly,
1 when all samples get the same distribution (one class always, or uniform uncertainty). On MNIST-like data with a
classifier trained on that data this is the "MNIST score" (TF-GAN). The samples are cut into ``num_splits``
contiguous splits (numpy.array_split, so every sample is used; the original code drops the remainder), the score is
computed per split, and (mean, std with ddof=0) over splits is returned, as in the reference implementation.
Everything runs in float64 with 0 log 0 = 0.
"""
from __future__ import annotations

import numpy as np
import scipy.special

from gen_jax.errors import ConfigError, GenJaxError

# Rows of a probability matrix must sum to 1 within this tolerance (float32 softmax outputs are off by ~1e-7).
PROB_SUM_TOL = 1e-3


def _split_scores(log_probs: np.ndarray, num_splits: int) -> tuple[float, float]:
  n = log_probs.shape[0]
  if not 1 <= int(num_splits) <= n:
    raise ConfigError(f"classifier_score: num_splits must be between 1 and the number of samples ({n}); "
                      f"got {num_splits}")
  scores = []
  for part in np.array_split(log_probs, int(num_splits)):
    probs = np.exp(part)
    # KL(p || q) = sum_y p (log p - log q); entries with p = 0 contribute 0 (log q is finite wherever any p > 0).
    with np.errstate(divide="ignore", invalid="ignore"):
      log_marginal = np.log(np.mean(probs, axis=0))
      kl = np.sum(np.where(probs > 0, probs * (part - log_marginal), 0.0), axis=1)
    scores.append(np.exp(np.mean(kl)))
  scores = np.asarray(scores)
  return float(scores.mean()), float(scores.std())


def _check_2d(x: np.ndarray, what: str) -> None:
  if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
    raise GenJaxError(f"classifier_score needs {what} of shape [N, K] with N >= 1 and K >= 2 classes; got {x.shape}")
  if not np.all(np.isfinite(x)):
    raise GenJaxError(f"classifier_score: the {what} contain NaN or Inf; check the classifier and its input range")


def classifier_score(probs_or_logits, num_splits: int = 10, from_logits: bool = False) -> tuple[float, float]:
  """(mean, std) over splits of exp(E_x KL(p(y|x) || p(y))) from class probabilities [N, K] (or logits)."""
  if from_logits:
    return classifier_score_from_logits(probs_or_logits, num_splits)
  probs = np.asarray(probs_or_logits, np.float64)
  _check_2d(probs, "probabilities")
  sums = probs.sum(axis=1)
  if np.any(probs < 0) or np.max(np.abs(sums - 1.0)) > PROB_SUM_TOL:
    raise GenJaxError("classifier_score: rows are not probability distributions (negative entries or sums off 1 by "
                      f"up to {np.max(np.abs(sums - 1.0)):.3g}); pass from_logits=True for unnormalised scores")
  probs = probs / sums[:, None]
  with np.errstate(divide="ignore"):
    log_probs = np.log(probs)
  return _split_scores(log_probs, num_splits)


def classifier_score_from_logits(logits, num_splits: int = 10) -> tuple[float, float]:
  """classifier_score with p(y|x) = softmax(logits) [N, K], computed as a float64 log-softmax."""
  logits = np.asarray(logits, np.float64)
  _check_2d(logits, "logits")
  return _split_scores(scipy.special.log_softmax(logits, axis=1), num_splits)
