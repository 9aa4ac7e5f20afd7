"""Frechet distance between two sets of feature vectors (FID when the features are Inception's; Heusel et al. 2017).

Each set is summarised by the mean and covariance of its features, as if it were a Gaussian; the Frechet
(2-Wasserstein) distance between N(mu_a, C_a) and N(mu_b, C_b) is

  FD = ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2}).

Covariances are unbiased (divided by count - 1, as numpy.cov and pytorch-fid), accumulated in float64 by Chan's
pairwise update (batch means and centred scatter matrices merged exactly), so features may arrive in batches of any
size and the result equals the one-shot statistics up to float64 round-off; memory is O(D^2) whatever the count.

tr (C_a C_b)^{1/2}: C_a C_b is not symmetric, but it is similar to S C_b S with S = C_a^{1/2} (symmetric PSD), so its
eigenvalues are those of S C_b S, real and >= 0. We take S from an eigendecomposition of C_a, symmetrise S C_b S,
clip its round-off-negative eigenvalues to 0 and sum their square roots. This works for singular covariances
(fewer samples than dimensions) without the eps * I fallback that scipy.linalg.sqrtm needs, and costs two symmetric
eigendecompositions of D x D.

Reference statistics can be stored with ``save_stats`` (.npz: mean, cov, count and a JSON ``meta`` dict that should
record the protocol: dataset, split, number of examples, feature network and its hash, seed). The evaluation suite
does not cache them yet: the dataset classifier's features of 10000 reference images take seconds to recompute.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from gen_jax.errors import ConfigError, DatasetError, GenJaxError

# Rows converted to float64 at a time by feature_stats, bounding its memory for any N.
STATS_CHUNK_ROWS = 4096
_STATS_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Mean [D] and unbiased covariance [D, D] (both float64) of ``count`` feature vectors."""
  mean: np.ndarray
  cov: np.ndarray
  count: int

  @property
  def dim(self) -> int:
    return int(self.mean.shape[0])


def _as_feature_batch(features, name: str = "features") -> np.ndarray:
  x = np.asarray(features)
  if x.ndim != 2:
    raise GenJaxError(f"{name} must be a 2-D array [N, D] of feature vectors; got shape {x.shape}. Flatten each "
                      "example's features to one vector (reshape(N, -1)).")
  if not np.issubdtype(x.dtype, np.number):
    raise GenJaxError(f"{name} must be numeric; got dtype {x.dtype}")
  return x


class StatsAccumulator:
  """Streaming mean and covariance in float64: ``acc.update(batch)`` for each [B, D] batch, then ``acc.result()``.

  Chan et al.'s pairwise merge of (count, mean, centred scatter) is exact in exact arithmetic and does not suffer
  the cancellation of sum(x x^T) - n mu mu^T when the mean is large relative to the spread.
  """

  def __init__(self, dim: int | None = None):
    self._dim = dim
    self._count = 0
    self._mean: np.ndarray | None = None
    self._scatter: np.ndarray | None = None

  @property
  def count(self) -> int:
    return self._count

  def update(self, batch) -> "StatsAccumulator":
    x = _as_feature_batch(batch, "batch")
    if self._dim is None:
      self._dim = x.shape[1]
    if x.shape[1] != self._dim:
      raise GenJaxError(f"StatsAccumulator: batch has {x.shape[1]} features per row, earlier batches had "
                        f"{self._dim}; every batch must come from the same feature network and layer")
    if x.shape[0] == 0:
      return self
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise GenJaxError("StatsAccumulator: batch has NaN or Inf features; check the feature network's input "
                        "(images in [0, 1]?) and the generator's samples")
    n_b = x.shape[0]
    mean_b = x.mean(axis=0)
    centred = x - mean_b
    scatter_b = centred.T @ centred
    if self._count == 0:
      self._count, self._mean, self._scatter = n_b, mean_b, scatter_b
      return self
    n_a = self._count
    n = n_a + n_b
    delta = mean_b - self._mean
    self._mean = self._mean + delta * (n_b / n)
    self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (n_a * n_b / n)
    self._count = n
    return self

  def result(self) -> FeatureStats:
    if self._count < 2:
      raise GenJaxError(f"a covariance needs at least 2 feature vectors; got {self._count}. Pass more examples.")
    cov = self._scatter / (self._count - 1)
    cov = 0.5 * (cov + cov.T)
    return FeatureStats(mean=self._mean.copy(), cov=cov, count=self._count)


def feature_stats(features, chunk_rows: int = STATS_CHUNK_ROWS) -> FeatureStats:
  """Mean and unbiased covariance (float64) of features [N, D], converted to float64 ``chunk_rows`` rows at a time."""
  x = _as_feature_batch(features)
  acc = StatsAccumulator(dim=x.shape[1])
  for start in range(0, x.shape[0], max(1, int(chunk_rows))):
    acc.update(x[start:start + chunk_rows])
  return acc.result()


def sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """Symmetric square root of a symmetric PSD matrix (eigenvalues below 0 from round-off clipped to 0)."""
  sym = 0.5 * (matrix + matrix.T)
  w, v = np.linalg.eigh(sym)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
  """tr (C_a C_b)^{1/2} for PSD C_a, C_b: sum of sqrt(eigenvalues of C_a^{1/2} C_b C_a^{1/2})."""
  s = sqrt_psd(np.asarray(cov_a, np.float64))
  m = s @ np.asarray(cov_b, np.float64) @ s
  w = np.linalg.eigvalsh(0.5 * (m + m.T))
  return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
  """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2}) (see the module docstring)."""
  if stats_a.mean.shape != stats_b.mean.shape or stats_a.cov.shape != stats_b.cov.shape:
    raise GenJaxError(f"frechet_distance: statistics of different feature dimensions ({stats_a.mean.shape[0]} vs "
                      f"{stats_b.mean.shape[0]}); both sets must come from the same feature network and layer")
  mu_a, mu_b = np.asarray(stats_a.mean, np.float64), np.asarray(stats_b.mean, np.float64)
  cov_a, cov_b = np.asarray(stats_a.cov, np.float64), np.asarray(stats_b.cov, np.float64)
  diff = mu_a - mu_b
  return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b))


def save_stats(path: str | os.PathLike, stats: FeatureStats, meta: dict[str, Any]) -> None:
  """Write stats and a JSON-serialisable ``meta`` (the protocol) to ``path`` (.npz), atomically."""
  try:
    meta_json = json.dumps(meta, sort_keys=True)
  except TypeError as e:
    raise ConfigError(f"save_stats: meta must be JSON-serialisable (str, numbers, lists, dicts); {e}") from e
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "wb") as f:
    np.savez(f, mean=np.asarray(stats.mean, np.float64), cov=np.asarray(stats.cov, np.float64),
             count=np.int64(stats.count), meta=np.array(meta_json), format=np.int64(_STATS_FORMAT))
  os.replace(tmp, path)


def load_stats(path: str | os.PathLike) -> tuple[FeatureStats, dict[str, Any]]:
  """(stats, meta) as written by ``save_stats``."""
  path = pathlib.Path(path)
  if not path.exists():
    raise DatasetError(f"no feature statistics at {path}; compute them with gen_jax.eval.metrics.frechet.feature_stats and "
                       "save_stats")
  try:
    with np.load(path, allow_pickle=False) as z:
      missing = {"mean", "cov", "count", "meta"} - set(z.files)
      if missing:
        raise DatasetError(f"{path} is not a feature-statistics file (missing {sorted(missing)}); recompute it with "
                           "gen_jax.eval.metrics.frechet.save_stats")
      mean, cov, count, meta = z["mean"], z["cov"], int(z["count"]), json.loads(str(z["meta"]))
  except DatasetError:
    raise
  except Exception as e:  # zipfile/npy/json errors: a truncated or foreign file
    raise DatasetError(f"cannot read feature statistics {path} ({type(e).__name__}: {e}); delete and recompute it "
                       "with gen_jax.eval.metrics.frechet.save_stats") from e
  if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
    raise DatasetError(f"{path}: mean {mean.shape} and cov {cov.shape} disagree; delete and recompute the statistics")
  return FeatureStats(mean=mean.astype(np.float64), cov=cov.astype(np.float64), count=count), meta
