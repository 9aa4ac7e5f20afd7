"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"), on any feature vectors.

KID is the squared maximum mean discrepancy between the two feature distributions under the cubic polynomial kernel

  k(x, y) = (x . y / D + 1)^3        (D = feature dimension),

estimated without bias. For subsets X = {x_1..x_m} of set a and Y = {y_1..y_m} of set b (each drawn uniformly
without replacement, independently for every subset)

  MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2.

Its expectation over the subsets equals the population MMD^2 (and the same U-statistic on the full sets), so it is
~0, possibly negative, for equal distributions. We return the mean over ``num_subsets`` subsets and the standard
deviation of the per-subset values (numpy's ddof=0, as the reference implementation and torch-fidelity), which is
the spread of one subset's estimate, not the standard error of the mean. m = min(subset_size, len(a), len(b)).

Standard practice (Binkowski et al.; clean-fid, torch-fidelity) keeps m = min(n, 1000). When m equals the size of
both sets (eval.num_samples <= eval.kid_subset_size), every "subset" is the two whole sets: the estimate is the
full-set U-statistic, computed once, and there is no spread to report. `kid_estimate` says so (std None, with the
reason) instead of printing a standard deviation of 0 over identical subsets.

Kernel sums run in float64 (the MMD is a small difference of large sums) over blocks of ``chunk_rows`` rows, so
memory is O(chunk_rows * m) even for a subset of 50k.
"""
from __future__ import annotations

import jax
import numpy as np

from gen_jax.errors import ConfigError, GenJaxError

KERNEL_CHUNK_ROWS = 2048


def _rng(key_or_seed) -> np.random.Generator:
  """A numpy Generator from an int seed or a JAX PRNG key (typed or raw uint32), without any JAX RNG op."""
  if isinstance(key_or_seed, (int, np.integer)):
    return np.random.default_rng(int(key_or_seed))
  key = key_or_seed
  if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  data = np.asarray(key)
  if data.dtype != np.uint32:
    raise ConfigError("kernel_inception_distance: key_or_seed must be an int or a JAX PRNG key; got "
                      f"{type(key_or_seed).__name__}")
  return np.random.default_rng([int(v) for v in data.ravel()])


def _kernel_sum(x: np.ndarray, y: np.ndarray, chunk_rows: int) -> float:
  """sum_{i, j} (x_i . y_j / D + 1)^3 over all pairs, in float64, ``chunk_rows`` rows of x at a time."""
  d = x.shape[1]
  total = 0.0
  for start in range(0, x.shape[0], chunk_rows):
    gram = x[start:start + chunk_rows] @ y.T
    total += float(np.sum((gram / d + 1.0) ** 3))
  return total


def _kernel_diag_sum(x: np.ndarray) -> float:
  return float(np.sum((np.einsum("ij,ij->i", x, x) / x.shape[1] + 1.0) ** 3))


def mmd2_unbiased(x, y, chunk_rows: int = KERNEL_CHUNK_ROWS) -> float:
  """The unbiased MMD^2 of the module docstring between two equal-size sets x, y [m, D] (cubic polynomial kernel)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  m = x.shape[0]
  if y.shape[0] != m or m < 2:
    raise GenJaxError(f"mmd2_unbiased needs two sets of the same size >= 2; got {x.shape[0]} and {y.shape[0]}")
  k_xx = _kernel_sum(x, x, chunk_rows) - _kernel_diag_sum(x)
  k_yy = _kernel_sum(y, y, chunk_rows) - _kernel_diag_sum(y)
  k_xy = _kernel_sum(x, y, chunk_rows)
  return (k_xx + k_yy) / (m * (m - 1)) - 2.0 * k_xy / (m * m)


def kernel_inception_distance(feat_a, feat_b, num_subsets: int = 100, subset_size: int = 1000, key_or_seed=0,
                              chunk_rows: int = KERNEL_CHUNK_ROWS) -> tuple[float, float]:
  """(mean, std) over ``num_subsets`` random subsets of the unbiased MMD^2 (see the module docstring).

  feat_a, feat_b: [N_a, D] and [N_b, D] features of the same network. ``key_or_seed``: an int or a JAX PRNG key; the
  same key gives the same subsets. KID is conventionally reported x 1000 with its protocol (subsets, subset size).
  """
  a, b = np.asarray(feat_a), np.asarray(feat_b)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise GenJaxError(f"kernel_inception_distance needs feature arrays [N_a, D] and [N_b, D] of one network; got "
                      f"{a.shape} and {b.shape}")
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    raise GenJaxError("kernel_inception_distance: NaN or Inf features; check the generator's samples and the "
                      "feature network's input range")
  if int(num_subsets) < 1:
    raise ConfigError(f"kernel_inception_distance: num_subsets must be >= 1 (eval.kid_subsets); got {num_subsets}")
  m = min(int(subset_size), a.shape[0], b.shape[0])
  if m < 2:
    raise ConfigError(f"kernel_inception_distance: subsets need >= 2 examples; got subset_size={subset_size} with "
                      f"{a.shape[0]} and {b.shape[0]} feature vectors (raise eval.kid_subset_size or eval.num_samples)")
  rng = _rng(key_or_seed)
  values = np.empty(int(num_subsets), np.float64)
  for s in range(int(num_subsets)):
    x = a[rng.choice(a.shape[0], m, replace=False)]
    y = b[rng.choice(b.shape[0], m, replace=False)]
    values[s] = mmd2_unbiased(x, y, chunk_rows)
  return float(values.mean()), float(values.std())


def kid_estimate(feat_a, feat_b, num_subsets: int = 100, subset_size: int = 1000, key_or_seed=0,
                 chunk_rows: int = KERNEL_CHUNK_ROWS) -> dict:
  """KID with an honest spread: {"mean", "std" (None when it cannot be measured), "num_subsets", "subset_size",
  "description"}.

  Subsets of m = min(subset_size, N_a, N_b) as `kernel_inception_distance`. When m covers both whole sets every
  subset is the same pair of sets: the mean is computed once (the full-set U-statistic) and "std" is None; so it
  is with a single subset asked for. "description" states the subsets (and why there is no spread) for a protocol.
  """
  a, b = np.asarray(feat_a), np.asarray(feat_b)
  m = min(int(subset_size), a.shape[0], b.shape[0]) if a.ndim == 2 and b.ndim == 2 else int(subset_size)
  whole = a.ndim == 2 and b.ndim == 2 and m == a.shape[0] == b.shape[0]
  subsets = 1 if whole else int(num_subsets)
  mean, std = kernel_inception_distance(a, b, num_subsets=subsets, subset_size=m, key_or_seed=key_or_seed,
                                        chunk_rows=chunk_rows)
  if whole:
    text = (f"cubic polynomial kernel, one subset: all {m} vs all {m} feature vectors (subset size "
            f"{int(subset_size)} >= the {m} per set, so all {int(num_subsets)} subsets would be the same sets); no "
            f"spread: kid_std n/a (for one, use more samples than eval.kid_subset_size)")
  elif subsets < 2:
    text = f"cubic polynomial kernel, 1 subset of {m}; no spread: kid_std n/a (use 2 or more subsets for one)"
  else:
    text = f"cubic polynomial kernel, {subsets} subsets of {m}"
  return {"mean": mean, "std": std if subsets >= 2 else None, "num_subsets": subsets, "subset_size": m,
          "description": text}
