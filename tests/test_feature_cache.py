"""The classifier-output cache of fixed image sets (gen_jax/eval/features/cache.py): a hit is exactly the computed
outputs, without running the classifier; other images, another classifier or batch size miss; a damaged file is
recomputed, never used; turned off, nothing is written."""
import numpy as np
import pytest

from gen_jax.eval.features import cache
from gen_jax.eval.features import feature_net as feature_net_lib


@pytest.fixture
def net():
  return feature_net_lib.load_feature_net(feature_net_lib.default_feature_net_dir("mnist"))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV, str(tmp_path / "features"))
  return tmp_path / "features"


def _count_passes(net, monkeypatch):
  calls = []
  real = net.apply

  def counted(images, batch_size=feature_net_lib.EVAL_BATCH, progress=None, cancel=None):
    calls.append(len(images))
    return real(images, batch_size, progress, cancel)
  monkeypatch.setattr(net, "apply", counted)
  return calls


def test_a_hit_returns_the_computed_outputs_without_running_the_classifier(net, cache_dir, monkeypatch):
  images = np.random.default_rng(0).uniform(size=(12, 28, 28, 1)).astype(np.float32)
  calls = _count_passes(net, monkeypatch)
  first = cache.cached_apply(net, images, 8)
  again = cache.cached_apply(net, images.copy(), 8)
  assert calls == [12] and len(list(cache_dir.glob("*.npz"))) == 1
  for a, b, plain in zip(first, again, net.apply(images, 8)):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, plain)
  # Other images, or another batch size (its float sums may differ), are misses.
  other = images.copy()
  other[0, 0, 0, 0] += 0.5
  cache.cached_apply(net, other, 8)
  cache.cached_apply(net, images, 4)
  assert calls == [12, 12, 12, 12] and len(list(cache_dir.glob("*.npz"))) == 3


def test_a_damaged_file_is_recomputed_and_rewritten(net, cache_dir, monkeypatch, caplog):
  images = np.random.default_rng(1).uniform(size=(6, 28, 28, 1)).astype(np.float32)
  want = cache.cached_apply(net, images, 8)
  path = next(cache_dir.glob("*.npz"))
  # Other numbers under the right name: the checksum catches them.
  np.savez(path, features=want[0] + 1, logits=want[1], checksum=np.array("0" * 64))
  calls = _count_passes(net, monkeypatch)
  got = cache.cached_apply(net, images, 8)
  assert calls == [6] and "fails its checksum" in caplog.text
  np.testing.assert_array_equal(got[0], want[0])
  path.write_bytes(b"truncated")   # not an npz at all
  got = cache.cached_apply(net, images, 8)
  assert calls == [6, 6] and "does not load" in caplog.text
  np.testing.assert_array_equal(got[1], want[1])
  assert cache.cached_apply(net, images, 8)[0].shape == want[0].shape and calls == [6, 6]   # rewritten: a hit


def test_turned_off_it_writes_nothing(net, tmp_path, monkeypatch):
  monkeypatch.setenv(cache.ENV, "off")
  assert cache.cache_dir() is None
  images = np.zeros((3, 28, 28, 1), np.float32)
  calls = _count_passes(net, monkeypatch)
  cache.cached_apply(net, images, 8)
  cache.cached_apply(net, images, 8)
  assert calls == [3, 3] and not list(tmp_path.rglob("*.npz"))


def test_the_samples_group_gives_the_same_numbers_from_the_cache(net, cache_dir, monkeypatch, make_config):
  """The reference and floor sets go through the classifier once per dataset; the samples every time."""
  import jax
  from conftest import TINY
  from gen_jax.data import load_dataset
  from gen_jax.eval.groups.sample_quality import evaluate_sample_quality

  class Replay:
    conditional, params_kind = False, "raw"

    def __init__(self, images):
      self.images = np.asarray(images, np.float32) / 255.0

    def sample(self, key, n):
      return self.images[:n]

  config = make_config("configs/gan.py", *TINY, "eval.num_samples=40", "eval.kid_subset_size=20", "eval.kid_subsets=2")
  dataset = load_dataset(config.data)
  model = Replay(dataset.train.images[-40:])
  monkeypatch.setenv(cache.ENV, "off")
  plain = evaluate_sample_quality(model, dataset, net, jax.random.key(0), config.eval, seed=0)["metrics"]
  monkeypatch.setenv(cache.ENV, str(cache_dir))
  calls = _count_passes(net, monkeypatch)
  first = evaluate_sample_quality(model, dataset, net, jax.random.key(0), config.eval, seed=0)["metrics"]
  second = evaluate_sample_quality(model, dataset, net, jax.random.key(0), config.eval, seed=0)["metrics"]
  assert calls == [40, 40, 40, 40] and first == plain == second   # 3 passes, then the samples alone
