"""Sample-quality metrics on feature arrays against known answers: closed forms, scipy and brute-force numpy."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

from gen_jax.errors import ConfigError, DatasetError, GenJaxError
from gen_jax.eval.metrics import classifier_score as cs
from gen_jax.eval.metrics import kid
from gen_jax.eval.metrics import frechet
from gen_jax.eval.metrics import manifold


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


# ----------------------------------------------------------------------------------------------------- Frechet


def test_frechet_identical_stats_is_zero():
  rng = np.random.default_rng(0)
  stats = frechet.feature_stats(rng.normal(size=(300, 16)) * 3.0 + 5.0)
  assert abs(frechet.frechet_distance(stats, stats)) < 1e-6
  # A singular (rank-deficient) covariance, as with fewer samples than dimensions, is handled too.
  low_rank = frechet.feature_stats(rng.normal(size=(5, 16)))
  assert np.linalg.matrix_rank(low_rank.cov) == 4
  assert abs(frechet.frechet_distance(low_rank, low_rank)) < 1e-6


def test_frechet_diagonal_closed_form():
  mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5, 3.0]), np.array([1.0, 1.0, 0.0, -0.5, 3.0])
  s1, s2 = np.array([1.0, 4.0, 0.25, 0.0, 2.0]), np.array([9.0, 1.0, 0.25, 1.0, 0.0])  # zero variances included
  a = frechet.FeatureStats(mean=mu1, cov=np.diag(s1), count=10)
  b = frechet.FeatureStats(mean=mu2, cov=np.diag(s2), count=10)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  assert frechet.frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)
  assert frechet.frechet_distance(b, a) == pytest.approx(expected, rel=1e-10)


def test_frechet_matches_scipy_sqrtm_on_random_spd():
  rng = np.random.default_rng(1)
  for d in (3, 12):
    ca, cb = _random_spd(rng, d), _random_spd(rng, d)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    expected = (np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb)
                - 2.0 * np.trace(scipy.linalg.sqrtm(ca @ cb).real))
    got = frechet.frechet_distance(frechet.FeatureStats(mu_a, ca, 100), frechet.FeatureStats(mu_b, cb, 100))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_frechet_of_samples_from_shifted_gaussians_near_closed_form():
  rng = np.random.default_rng(2)
  n, mu1, mu2 = 20_000, np.array([0.0, 0.0, 1.0, -1.0]), np.array([1.0, -1.0, 1.0, 0.0])
  sd1, sd2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.0, 1.0, 1.5, 0.5])
  a = frechet.feature_stats(mu1 + sd1 * rng.normal(size=(n, 4)))
  b = frechet.feature_stats(mu2 + sd2 * rng.normal(size=(n, 4)))
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2)  # = 3 + 1.5
  # Sampling error: ~2 |dmu| sd / sqrt(n) ~ 0.03 from the means, less from the covariances.
  assert frechet.frechet_distance(a, b) == pytest.approx(expected, abs=0.15)


def test_streaming_accumulator_equals_one_shot_stats():
  rng = np.random.default_rng(3)
  # A large common offset: the naive sum(x x^T) - n mu mu^T would lose digits here.
  x = (1e4 + rng.normal(size=(203, 6)) * np.arange(1, 7)).astype(np.float32)
  acc = frechet.StatsAccumulator()
  for lo, hi in [(0, 1), (1, 50), (50, 50), (50, 130), (130, 203)]:
    acc.update(x[lo:hi])
  streamed = acc.result()
  one_shot = frechet.feature_stats(x, chunk_rows=10_000)
  chunked = frechet.feature_stats(x, chunk_rows=7)
  ref_mean, ref_cov = x.astype(np.float64).mean(axis=0), np.cov(x.astype(np.float64), rowvar=False)
  for stats in (streamed, one_shot, chunked):
    assert stats.count == 203 and stats.mean.dtype == np.float64 and stats.cov.dtype == np.float64
    np.testing.assert_allclose(stats.mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(stats.cov, ref_cov, rtol=1e-8, atol=1e-8)
  with pytest.raises(GenJaxError, match="same feature network"):
    acc.update(x[:, :3])
  with pytest.raises(GenJaxError, match="at least 2"):
    frechet.StatsAccumulator().update(x[:1]).result()


def test_stats_save_load_roundtrip(tmp_path):
  rng = np.random.default_rng(4)
  stats = frechet.feature_stats(rng.normal(size=(50, 5)))
  meta = {"dataset": "mnist", "split": "test", "count": 50, "feature_net": "lenet", "sha256": "ab12", "seed": 0}
  path = tmp_path / "ref" / "mnist_test.npz"
  frechet.save_stats(path, stats, meta)
  loaded, loaded_meta = frechet.load_stats(path)
  assert loaded_meta == meta and loaded.count == 50
  np.testing.assert_array_equal(loaded.mean, stats.mean)
  np.testing.assert_array_equal(loaded.cov, stats.cov)
  assert frechet.frechet_distance(loaded, stats) == pytest.approx(0.0, abs=1e-9)
  with pytest.raises(DatasetError, match="no feature statistics"):
    frechet.load_stats(tmp_path / "missing.npz")
  (tmp_path / "junk.npz").write_bytes(b"not a zip file")
  with pytest.raises(DatasetError, match="recompute"):
    frechet.load_stats(tmp_path / "junk.npz")
  with pytest.raises(GenJaxError, match="feature dimensions"):
    frechet.frechet_distance(stats, frechet.feature_stats(rng.normal(size=(50, 4))))


# ----------------------------------------------------------------------------------------------------- KID


def _brute_mmd2(x: np.ndarray, y: np.ndarray, unbiased: bool = True) -> float:
  """Double loop over the cubic polynomial kernel (x.y / D + 1)^3."""
  d = x.shape[1]
  k = lambda u, v: (float(np.dot(u, v)) / d + 1.0) ** 3  # noqa: E731
  m, n = len(x), len(y)
  skip = 1 if unbiased else 0
  kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if not (unbiased and i == j)) / (m * (m - skip))
  kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if not (unbiased and i == j)) / (n * (n - skip))
  kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return kxx + kyy - 2.0 * kxy


def test_kid_full_sets_equal_brute_force_u_statistic():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 3)) + 0.5
  # subset_size is capped at 8, so the single subset is a permutation of each whole set.
  mean, std = kid.kernel_inception_distance(a, b, num_subsets=1, subset_size=1000, key_or_seed=0)
  assert mean == pytest.approx(_brute_mmd2(a, b), rel=1e-10)
  assert std == 0.0
  # Chunked kernel sums agree with unchunked ones.
  assert kid.mmd2_unbiased(a, b, chunk_rows=3) == pytest.approx(_brute_mmd2(a, b), rel=1e-10)


def test_kid_subset_average_is_unbiased():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 3)) * 1.5 + 0.3
  num_subsets, m = 4000, 3
  mean, std = kid.kernel_inception_distance(a, b, num_subsets=num_subsets, subset_size=m, key_or_seed=1)
  # Subsets drawn without replacement: E[estimate] is the U-statistic of the full sets.
  target = _brute_mmd2(a, b)
  tol = 4.0 * std / np.sqrt(num_subsets)
  assert abs(mean - target) < tol
  # The test can tell a biased estimator apart: the V-statistic (diagonal kept) at m = 3 is far off.
  x, y = a[:m], b[:m]
  assert abs(_brute_mmd2(x, y, unbiased=False) - _brute_mmd2(x, y)) > 5 * tol


def test_kid_same_distribution_near_zero_and_shift_positive():
  import jax
  rng = np.random.default_rng(7)
  a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
  same_mean, same_std = kid.kernel_inception_distance(a, b, num_subsets=20, subset_size=100, key_or_seed=0)
  assert same_std > 0 and abs(same_mean) < same_std
  shift_mean, shift_std = kid.kernel_inception_distance(a, b + 0.5, num_subsets=20, subset_size=100, key_or_seed=0)
  assert shift_mean > 5 * shift_std and shift_mean > 10 * abs(same_mean)
  # A JAX key (typed or raw) works and fixes the subsets.
  key = jax.random.key(3)
  assert (kid.kernel_inception_distance(a, b, 3, 50, key) == kid.kernel_inception_distance(a, b, 3, 50, key))
  assert np.isfinite(kid.kernel_inception_distance(a, b, 3, 50, jax.random.PRNGKey(3))[0])
  with pytest.raises(ConfigError, match="subset"):
    kid.kernel_inception_distance(a[:1], b, 3, 50)


# ----------------------------------------------------------------------------------------------------- manifold


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict:
  """Full distance matrices in float64, written straight from the papers' definitions."""
  def dist(u, v):
    return np.sqrt(((u[:, None, :] - v[None, :, :]) ** 2).sum(-1))

  def nnd(x, k):
    d = dist(x, x)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]

  d_rf = dist(real, fake)  # [N, M]
  r_pr, f_pr, r_dc = nnd(real, k_pr), nnd(fake, k_pr), nnd(real, k_dc)
  return dict(precision=np.mean((d_rf <= r_pr[:, None]).any(axis=0)),
              recall=np.mean((d_rf <= f_pr[None, :]).any(axis=1)),
              density=(d_rf < r_dc[:, None]).sum() / (k_dc * fake.shape[0]),
              coverage=np.mean(d_rf.min(axis=1) < r_dc),
              radii_sq=r_pr ** 2)


def test_manifold_chunked_equals_brute_force():
  rng = np.random.default_rng(8)
  real = rng.normal(size=(37, 5))
  fake = rng.normal(size=(29, 5)) + 0.7
  ref = _brute_prdc(real, fake, k_pr=3, k_dc=5)
  assert 0 < ref["precision"] < 1 and 0 < ref["recall"] < 1 and 0 < ref["coverage"] < 1  # a non-trivial case
  for chunk in (8, 1024):  # several padded chunks; one chunk
    radii = manifold.kth_neighbour_sq_distances(real, real, 3, exclude_self=True, chunk_size=chunk)
    np.testing.assert_allclose(radii, ref["radii_sq"], rtol=1e-4)
    pr = manifold.precision_recall(real, fake, k=3, chunk_size=chunk)
    dc = manifold.density_coverage(real, fake, k=5, chunk_size=chunk)
    for name, value in {**pr, **dc}.items():
      assert value == pytest.approx(ref[name], abs=1e-12), (name, chunk)


def test_manifold_identical_and_disjoint_sets():
  rng = np.random.default_rng(9)
  real = rng.normal(size=(200, 8))
  pr, dc = manifold.precision_recall(real, real.copy()), manifold.density_coverage(real, real.copy())
  assert pr == {"precision": 1.0, "recall": 1.0}
  assert dc["coverage"] == 1.0 and dc["density"] == pytest.approx(1.0, abs=0.02)
  far = real + 100.0
  assert manifold.precision_recall(real, far) == {"precision": 0.0, "recall": 0.0}
  assert manifold.density_coverage(real, far) == {"density": 0.0, "coverage": 0.0}
  with pytest.raises(ConfigError, match="lower k"):
    manifold.precision_recall(real[:3], real[:3], k=3)


def test_manifold_ball_conventions_on_duplicated_features():
  # Four distinct points, each repeated 4 times: every NND_3 radius is 0. Closed balls (precision/recall) still hold
  # their centre; open balls (density/coverage, prdc's convention) are empty.
  points = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
  real = np.repeat(points, 4, axis=0)
  np.testing.assert_array_equal(manifold.kth_neighbour_sq_distances(real, real, 3, exclude_self=True), 0.0)
  assert manifold.precision_recall(real, points, k=3)["precision"] == 1.0
  assert manifold.density_coverage(real, points, k=3) == {"density": 0.0, "coverage": 0.0}


def test_manifold_mode_collapse_halves_recall_and_coverage():
  rng = np.random.default_rng(10)
  centres = rng.normal(size=(10, 2)) * 50.0  # ten far-apart clusters
  real = (centres[:, None, :] + rng.normal(size=(10, 100, 2))).reshape(-1, 2)
  fake = (centres[:5, None, :] + rng.normal(size=(5, 100, 2))).reshape(-1, 2)  # only half of the clusters
  pr, dc = manifold.precision_recall(real, fake), manifold.density_coverage(real, fake)
  # Precision and density stay near 1 (each generated point looks real); recall and coverage fall to ~1/2
  # (and never above: real points of the missing clusters are far from every generated point).
  assert pr["precision"] > 0.93
  assert 0.45 < pr["recall"] <= 0.5
  assert 0.45 < dc["coverage"] <= 0.5
  assert dc["density"] == pytest.approx(1.0, abs=0.1)


# ----------------------------------------------------------------------------------------------------- classifier score


def test_classifier_score_known_values():
  k = 10
  one_hot = np.eye(k)[np.tile(np.arange(k), 100)]  # every split of 100 uses each class 10 times
  mean, std = cs.classifier_score(one_hot, num_splits=10)
  assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
  same_class = np.eye(k)[np.full(500, 3)]
  assert cs.classifier_score(same_class, num_splits=5)[0] == pytest.approx(1.0, rel=1e-12)
  uniform = np.full((500, k), 1.0 / k)
  assert cs.classifier_score(uniform, num_splits=5)[0] == pytest.approx(1.0, rel=1e-12)


def test_classifier_score_matches_scipy_entropy_and_logits():
  rng = np.random.default_rng(11)
  logits = rng.normal(size=(103, 7)) * 2.0
  probs = scipy.special.softmax(logits, axis=1)
  splits = np.array_split(probs, 4)
  per_split = [np.exp(np.mean([scipy.stats.entropy(p, part.mean(axis=0)) for p in part])) for part in splits]
  mean, std = cs.classifier_score(probs, num_splits=4)
  np.testing.assert_allclose([mean, std], [np.mean(per_split), np.std(per_split)], rtol=1e-10)
  np.testing.assert_allclose(cs.classifier_score_from_logits(logits, num_splits=4), [mean, std], rtol=1e-10)
  np.testing.assert_allclose(cs.classifier_score(logits, num_splits=4, from_logits=True), [mean, std], rtol=1e-10)
  with pytest.raises(GenJaxError, match="from_logits"):
    cs.classifier_score(logits, num_splits=4)
  with pytest.raises(ConfigError, match="num_splits"):
    cs.classifier_score(probs, num_splits=500)


def test_generate_hands_each_call_its_own_labels_and_keys():
  """batching.generate: call i gets fold_in(key, i) and labels[i*b:(i+1)*b]; the tail is trimmed to `num`; too few
  labels is an error, not a silent reuse."""
  import jax
  from gen_jax.eval import batching
  seen = []

  def sample_fn(k, m, labels=None):
    seen.append(np.asarray(k))
    return np.asarray(labels, np.float32)[:, None] if labels is not None else np.zeros((m, 1), np.float32)

  key = jax.random.PRNGKey(3)
  out = batching.generate(sample_fn, key, 7, 3, labels=np.arange(9))
  np.testing.assert_array_equal(out[:, 0], np.arange(7))
  assert len(seen) == 3 and all(np.array_equal(s, np.asarray(jax.random.fold_in(key, i))) for i, s in enumerate(seen))
  assert batching.generate(sample_fn, key, 2, 5).shape == (2, 1)            # batch clamped to num, no labels
  with pytest.raises(ValueError, match="need 9"):
    batching.generate(sample_fn, key, 7, 3, labels=np.arange(8))


def test_generate_and_map_batches_stop_between_batches_when_cancelled():
  """`cancel` is asked before each batch: the batch it refuses is never run (a SIGTERM during a training-time
  evaluation abandons it within one batch); no cancel, or one that stays False, changes nothing."""
  import jax
  from gen_jax.eval import batching
  calls = []

  def sample_fn(k, m):
    calls.append(m)
    return np.zeros((m, 1), np.float32)

  with pytest.raises(batching.Cancelled):
    batching.generate(sample_fn, jax.random.PRNGKey(0), 10, 2, cancel=lambda: len(calls) >= 2)
  assert calls == [2, 2]
  assert batching.generate(sample_fn, jax.random.PRNGKey(0), 10, 2, cancel=lambda: False).shape == (10, 1)
  seen = []

  def fn(x):
    seen.append(len(x))
    return x * 2
  with pytest.raises(batching.Cancelled):
    batching.map_batches(fn, np.ones((9, 1)), batch_size=4, cancel=lambda: len(seen) >= 1)
  assert seen == [4]
  np.testing.assert_array_equal(batching.map_batches(fn, np.ones((9, 1)), batch_size=4, cancel=lambda: False),
                                2 * np.ones((9, 1)))
