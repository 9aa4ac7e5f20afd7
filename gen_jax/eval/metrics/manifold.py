"""k-nearest-neighbour manifold metrics: improved precision and recall, density and coverage, on feature vectors.

Notation: real features X = {x_1..x_N}, generated features Y = {y_1..y_M}, Euclidean distance d, and
NND_k(x) = the distance from a point x of a set to its k-th nearest neighbour in that same set, the point itself
excluded (by index, so an exact duplicate of x still counts as a neighbour at distance 0).

Improved precision and recall (Kynkaanniemi et al. 2019, default k = 3). A point lies in the manifold of a set S
when it is within NND_k(s) of at least one s in S (closed balls, <=, as in the paper):
  precision = (1/M) sum_j 1[ exists i : d(y_j, x_i) <= NND_k(x_i) ]      (NND over X)
  recall    = (1/N) sum_i 1[ exists j : d(x_i, y_j) <= NND_k(y_j) ]      (NND over Y)

Density and coverage (Naeem et al. 2020, default k = 5), with open balls (<) as in the authors' code (prdc):
  density  = 1/(k M) sum_j sum_i 1[ d(y_j, x_i) < NND_k(x_i) ]           (NND over X)
  coverage = (1/N) sum_i 1[ min_j d(x_i, y_j) < NND_k(x_i) ]
For Y = X every ball B(x_i, NND_k(x_i)) holds exactly its centre and k - 1 other points of X (with no ties), so
density = 1 and precision = recall = coverage = 1. Density is unbounded above (generated points crowded where
real balls overlap); the others lie in [0, 1]. On features with exact duplicates (at least k copies of a point) a
radius is 0: its closed ball still holds the point (precision/recall count it), its open ball is empty
(density/coverage do not), as in the respective reference implementations.

Computation: squared distances |a|^2 + |b|^2 - 2 a.b (float32, highest matmul precision, clipped at 0) between a
chunk of ``chunk_size`` query rows and the whole other set, jitted once per set size (the last chunk is padded).
Memory is O(chunk_size * N) whatever N; the metrics compare squared distances with squared radii, which gives the
same answers as comparing distances. Two shared kernels: ``kth_neighbour_sq_distances`` (the radii, or the nearest
generated point for coverage) and ``count_containing_balls`` (how many balls contain each point).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.errors import ConfigError, GenJaxError

CHUNK_ROWS = 1024


def _sq_dists(queries: jax.Array, points: jax.Array, points_sq: jax.Array) -> jax.Array:
  q_sq = jnp.sum(queries * queries, axis=1)
  cross = jnp.matmul(queries, points.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(q_sq[:, None] + points_sq[None, :] - 2.0 * cross, 0.0)


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _kth_chunk(queries, offset, points, points_sq, *, k: int, exclude_self: bool):
  d2 = _sq_dists(queries, points, points_sq)
  if exclude_self:
    rows = offset + jnp.arange(queries.shape[0])
    d2 = jnp.where(rows[:, None] == jnp.arange(points.shape[0])[None, :], jnp.inf, d2)
  # The k smallest, all of them: slicing out the k-th inside the jit makes XLA:CPU lower top_k to a full sort of
  # every row (10x slower); the caller takes the last column.
  neg_smallest, _ = jax.lax.top_k(-d2, k)
  return -neg_smallest


@functools.partial(jax.jit, static_argnames=("inclusive",))
def _count_chunk(queries, centers, centers_sq, radii_sq, *, inclusive: bool):
  d2 = _sq_dists(queries, centers, centers_sq)
  inside = d2 <= radii_sq[None, :] if inclusive else d2 < radii_sq[None, :]
  return jnp.sum(inside, axis=1, dtype=jnp.int32)


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise GenJaxError(f"{name} must be a non-empty 2-D array [N, D] of feature vectors; got shape {x.shape}")
  x = x.astype(np.float32)
  if not np.all(np.isfinite(x)):
    raise GenJaxError(f"{name} has NaN or Inf features; check the generator's samples and the feature network")
  return x


def _map_chunks(fn, queries: np.ndarray, chunk_size: int) -> np.ndarray:
  """fn(chunk [c, D], offset) over row chunks of ``queries`` (last one zero-padded to c); results concatenated."""
  n = queries.shape[0]
  c = max(1, min(int(chunk_size), n))
  outs = []
  for start in range(0, n, c):
    chunk = queries[start:start + c]
    if chunk.shape[0] < c:
      chunk = np.concatenate([chunk, np.zeros((c - chunk.shape[0], queries.shape[1]), queries.dtype)])
    outs.append(fn(jnp.asarray(chunk), jnp.int32(start)))
  return np.concatenate([np.asarray(o) for o in outs])[:n]


def kth_neighbour_sq_distances(queries, points, k: int, *, exclude_self: bool = False,
                               chunk_size: int = CHUNK_ROWS) -> np.ndarray:
  """[Q] squared distance from each query to its k-th nearest point (k >= 1).

  exclude_self=True: queries and points are the same set and query i never counts point i (the NND_k radii).
  """
  q = _features(queries, "queries")
  p = _features(points, "points")
  if q.shape[1] != p.shape[1]:
    raise GenJaxError(f"queries have {q.shape[1]} features and points {p.shape[1]}; use one feature network")
  if exclude_self and q.shape[0] != p.shape[0]:
    raise GenJaxError(f"exclude_self needs queries and points to be the same set; got {q.shape[0]} and {p.shape[0]}")
  available = p.shape[0] - (1 if exclude_self else 0)
  if not 1 <= int(k) <= available:
    raise ConfigError(f"k-th nearest neighbour with k={k} needs 1 <= k <= {available} (the set has {p.shape[0]} "
                      "points); lower k (eval.pr_k / eval.dc_k) or use more samples")
  p_dev = jnp.asarray(p)
  p_sq = jnp.sum(p_dev * p_dev, axis=1)
  fn = lambda chunk, offset: _kth_chunk(chunk, offset, p_dev, p_sq, k=int(k), exclude_self=exclude_self)  # noqa: E731
  return _map_chunks(fn, q, chunk_size)[:, int(k) - 1]


def count_containing_balls(queries, centers, radii_sq, *, inclusive: bool,
                           chunk_size: int = CHUNK_ROWS) -> np.ndarray:
  """[Q] int: for each query, the number of balls B(centers_i, sqrt(radii_sq_i)) containing it.

  inclusive=True counts d^2 <= r^2 (closed balls), False counts d^2 < r^2 (open balls).
  """
  q = _features(queries, "queries")
  c = _features(centers, "centers")
  r = np.asarray(radii_sq, np.float32)
  if q.shape[1] != c.shape[1] or r.shape != (c.shape[0],):
    raise GenJaxError(f"count_containing_balls: queries {q.shape}, centers {c.shape} and radii {r.shape} disagree")
  c_dev = jnp.asarray(c)
  c_sq = jnp.sum(c_dev * c_dev, axis=1)
  r_dev = jnp.asarray(r)
  fn = lambda chunk, offset: _count_chunk(chunk, c_dev, c_sq, r_dev, inclusive=inclusive)  # noqa: E731
  return _map_chunks(fn, q, chunk_size)


def precision_recall(real, fake, k: int = 3, chunk_size: int = CHUNK_ROWS) -> dict[str, float]:
  """Improved precision and recall of fake features against real ones (see the module docstring)."""
  real_radii = kth_neighbour_sq_distances(real, real, k, exclude_self=True, chunk_size=chunk_size)
  fake_radii = kth_neighbour_sq_distances(fake, fake, k, exclude_self=True, chunk_size=chunk_size)
  precision = np.mean(count_containing_balls(fake, real, real_radii, inclusive=True, chunk_size=chunk_size) > 0)
  recall = np.mean(count_containing_balls(real, fake, fake_radii, inclusive=True, chunk_size=chunk_size) > 0)
  return dict(precision=float(precision), recall=float(recall))


def density_coverage(real, fake, k: int = 5, chunk_size: int = CHUNK_ROWS) -> dict[str, float]:
  """Density and coverage of fake features against real ones (see the module docstring)."""
  real_radii = kth_neighbour_sq_distances(real, real, k, exclude_self=True, chunk_size=chunk_size)
  counts = count_containing_balls(fake, real, real_radii, inclusive=False, chunk_size=chunk_size)
  density = counts.sum(dtype=np.int64) / (int(k) * counts.shape[0])
  nearest_fake = kth_neighbour_sq_distances(real, fake, 1, chunk_size=chunk_size)
  coverage = np.mean(nearest_fake < real_radii)
  return dict(density=float(density), coverage=float(coverage))
