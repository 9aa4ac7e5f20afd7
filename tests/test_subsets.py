"""Seeded, class-balanced subsets: on class-sorted data (labels 0..9 in blocks, as an image folder's loader orders
them) every subset an evaluation group takes holds all classes in equal counts; the old "first n images" took one
or two classes."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import schema
from gen_jax.data import subsets
from gen_jax.data.dataset import ArraySplit, Dataset
from gen_jax.errors import ConfigError
from gen_jax.eval.groups import imputation as imp
from gen_jax.eval.groups.latent import latent_smoothness
from gen_jax.eval.groups.sample_quality import evaluate_sample_quality

K, PER_CLASS = 10, 30


def _sorted_split(per_class=PER_CLASS, shape=(4, 4, 1)) -> ArraySplit:
  """Class c's images are the constant 20 c + 5: the class can be read back from any image."""
  labels = np.repeat(np.arange(K, dtype=np.int32), per_class)
  images = np.broadcast_to((labels * 20 + 5).astype(np.uint8)[:, None, None, None], (len(labels),) + shape).copy()
  return ArraySplit(images, labels)


def _classes(images) -> np.ndarray:
  """The class of each image (uint8 or [0, 1] floats) of `_sorted_split`."""
  x = np.asarray(images, np.float64)
  x = x * 255.0 if x.max() <= 1.0 else x
  return np.rint((x.reshape(len(x), -1).mean(axis=1) - 5) / 20).astype(int)


def _assert_balanced(classes, n):
  counts = np.bincount(classes, minlength=K)
  assert counts.sum() == n and counts.max() - counts.min() <= 1, counts
  if n % K == 0:
    assert (counts == n // K).all(), counts


def test_balanced_indices_on_class_sorted_labels():
  labels = _sorted_split().labels
  first = labels[:40]
  assert len(np.unique(first)) == 2          # what "the first n" took
  for n in (40, 45, 123):
    idx = subsets.balanced_indices(labels, n, 0, "reference")
    assert len(idx) == n == len(set(idx.tolist()))
    _assert_balanced(labels[idx], n)
    np.testing.assert_array_equal(idx, subsets.balanced_indices(labels, n, 0, "reference"))   # seeded
  a, b = (subsets.balanced_indices(labels, 40, 0, p) for p in ("reference", "floor"))
  assert not np.array_equal(np.sort(a), np.sort(b))                                        # purposes independent
  # The remainder (5 of 45) goes to classes chosen by the seed, not always the first five.
  extras = {tuple(np.flatnonzero(np.bincount(labels[subsets.balanced_indices(labels, 45, s, "x")]) == 5))
            for s in range(6)}
  assert len(extras) > 1
  # The whole split (or more) is the split itself, in order; a JAX key works as the seed.
  np.testing.assert_array_equal(subsets.balanced_indices(labels, 10_000, 3, "x"), np.arange(len(labels)))
  assert len(subsets.balanced_indices(labels, 20, jax.random.key(4), "x")) == 20


def test_short_classes_give_all_they_have_and_the_rest_is_spread():
  labels = np.concatenate([np.zeros(3, np.int32), np.ones(100, np.int32), np.full(100, 2, np.int32)])
  counts = np.bincount(labels[subsets.balanced_indices(labels, 61, 0, "x")])
  assert counts[0] == 3 and sorted(counts[1:].tolist()) == [29, 29]
  unlabelled = subsets.balanced_indices(50, 20, 0, "x")
  assert len(set(unlabelled.tolist())) == 20 and unlabelled.max() < 50
  with pytest.raises(ConfigError, match="n >= 0"):
    subsets.balanced_indices(labels, -1, 0, "x")
  assert "all 50" in subsets.describe_subset(50, 50)
  assert "20 of 50 images, class-balanced seeded draw (seed 0, purpose 'reference'" in \
      subsets.describe_subset(20, 50, 0, "reference")


# --- the evaluation groups ------------------------------------------------------------------------------------------
class _Features:
  """A stand-in feature classifier: raw pixels as features, K uniform logits."""
  sha256 = "0" * 64

  def features(self, x):
    return np.asarray(x, np.float64).reshape(len(x), -1)

  def logits(self, x):
    return np.zeros((len(x), K))

  def apply(self, x, batch_size=None, progress=None):
    return self.features(x), self.logits(x)

  def describe(self):
    return {"feature_net_dataset": "synthetic"}


class _Model:
  """A constant-output sampler / linear decoder with an identity-like encoder, on 4x4x1 images."""
  conditional, params_kind, is_image, has_encoder, family_name = False, "raw", True, True, "stub"
  data_shape, latent_dim, binarization, models = (4, 4, 1), 16, None, None

  def __init__(self):
    self.encoded = []

  def sample(self, key, n):
    return jax.random.uniform(key, (n, 4, 4, 1))

  def prior(self, key, n):
    return jax.random.normal(key, (n, 16))

  def decode(self, z, labels=None):
    return jnp.reshape(z, (z.shape[0], 4, 4, 1))

  def encode(self, x, labels=None):
    if not isinstance(x, jax.core.Tracer):   # latent_smoothness encodes eagerly; imputation inside jit
      self.encoded.append(np.asarray(x))
    flat = jnp.reshape(x, (x.shape[0], -1))
    return flat, jnp.full_like(flat, -30.0)

  def model_input(self, x, key=None):
    return jnp.asarray(x, jnp.float32)


def _dataset():
  return Dataset("sorted", _sorted_split(), _sorted_split(), K, None, "synthetic, class-sorted")


def test_sample_quality_reference_and_floor_are_balanced():
  cfg = schema.base().eval
  cfg.update(num_samples=40, kid_subsets=2, kid_subset_size=20, pr_k=3, dc_k=3, batch_size=40)
  out = evaluate_sample_quality(_Model(), _dataset(), _Features(), jax.random.key(0), cfg, seed=0)
  _assert_balanced(_classes(out["real"]), 40)
  _assert_balanced(_classes(out["floor_set"]), 40)
  assert "class-balanced seeded draw (seed 0, purpose 'reference'" in out["protocol"]["reference"]
  assert "purpose 'floor'" in out["protocol"]["floor"]


def test_imputation_examples_are_balanced(monkeypatch):
  seen = []
  original = imp.missing_pixel_mse

  def spy(imputed, truth, missing):
    seen.append(np.asarray(truth))
    return original(imputed, truth, missing)

  monkeypatch.setattr(imp, "missing_pixel_mse", spy)
  split = _sorted_split()
  out = imp.evaluate_imputation(_Model(), split.images, split.labels, jax.random.key(0), num_examples=20, steps=2,
                                batch_size=20, num_imputations=1, mean_image=np.zeros((4, 4, 1)))
  assert seen and all(_classes(t).tolist() == _classes(seen[0]).tolist() for t in seen)
  _assert_balanced(_classes(seen[0]), 20)
  assert "20 of 300 images, class-balanced" in out["protocol"]["images"]


def test_encoding_pairs_are_balanced():
  model, split = _Model(), _sorted_split()
  out = latent_smoothness(model, None, split.images, split.labels, jax.random.key(0), num_pairs=10, epsilon=1e-2,
                          batch_size=100)
  encoded = np.concatenate(model.encoded)
  _assert_balanced(_classes(encoded), 20)
  assert "20 of 300 images, class-balanced" in out["protocol"]["encoding_pairs"]


def test_image_grid_batch_is_balanced():
  from gen_jax.data.sampler import BatchSampler
  batch = BatchSampler(300, 10, None).visual_batch(_dataset(), 40, jax.random.key(0))
  _assert_balanced(_classes(np.asarray(batch["image"])), 40)
  np.testing.assert_array_equal(_classes(np.asarray(batch["image"])), np.asarray(batch["label"]))


def test_stacked_grid_batch_is_balanced_in_every_channel():
  """Stacked MNIST grids: each channel a balanced draw, labels = 100 r + 10 g + b (not the split's first 3n)."""
  from gen_jax.data.sampler import StackedMnistSampler
  batch = StackedMnistSampler(300, 10, None).visual_batch(_dataset(), 40, jax.random.key(0))
  image = np.asarray(batch["image"])
  channels = [_classes(image[..., c:c + 1]) for c in range(3)]
  for classes in channels:
    _assert_balanced(classes, 40)
  np.testing.assert_array_equal(channels[0] * 100 + channels[1] * 10 + channels[2], np.asarray(batch["label"]))


def test_matching_draw_takes_the_target_class_counts_and_spreads_a_shortfall():
  labels = np.repeat(np.arange(3, dtype=np.int32), [5, 100, 100])
  target = np.repeat(np.arange(3, dtype=np.int32), [10, 30, 60])   # class 0 has only 5 here: 5 short
  idx = subsets.matching_indices(labels, target, 0, "floor")
  counts = np.bincount(labels[idx], minlength=3)
  assert len(set(idx.tolist())) == 100 and counts[0] == 5 and counts[1] >= 30 and counts[2] >= 60
  assert sorted((counts[1:] - [30, 60]).tolist()) == [2, 3]
  np.testing.assert_array_equal(idx, subsets.matching_indices(labels, target, 0, "floor"))   # seeded


class _ConditionalModel(_Model):
  conditional = True

  def __init__(self):
    super().__init__()
    self.labels = []

  def sample(self, key, n, labels=None):
    self.labels.append(np.asarray(labels))
    return jax.random.uniform(key, (n, 4, 4, 1))


def test_floor_and_conditional_labels_follow_the_reference_class_proportions():
  """The reference is the whole (imbalanced) test split: the floor drawn from train and a conditional model's
  sample labels carry the same class counts (a balanced floor would not be the floor of a perfect model)."""
  per = np.array([4, 4, 4, 4, 4, 4, 4, 4, 4, 24])
  test_labels = np.repeat(np.arange(K, dtype=np.int32), per)
  test = ArraySplit(np.broadcast_to((test_labels * 20 + 5).astype(np.uint8)[:, None, None, None],
                                    (len(test_labels), 4, 4, 1)).copy(), test_labels)
  data = Dataset("imbalanced", _sorted_split(), test, K, None, "synthetic")
  cfg = schema.base().eval
  cfg.update(num_samples=len(test_labels), kid_subsets=2, kid_subset_size=20, pr_k=3, dc_k=3, batch_size=16)
  model = _ConditionalModel()
  out = evaluate_sample_quality(model, data, _Features(), jax.random.key(0), cfg, seed=0)
  np.testing.assert_array_equal(np.bincount(_classes(out["floor_set"]), minlength=K), per)
  drawn = np.concatenate(model.labels)[:len(test_labels)]
  np.testing.assert_array_equal(np.bincount(drawn, minlength=K), per)
  assert "reference's class counts" in out["protocol"]["floor"]
  assert "reference images' labels" in out["protocol"]["labels"]
