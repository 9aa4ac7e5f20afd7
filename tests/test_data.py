"""Tests of the data layer: IDX reader, TFDS builders over the real MNIST files, user images, registry."""
import gzip
import pathlib
import struct

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from gen_jax.data import DATASET_NAMES, ArraySplit, Dataset, load_dataset
from gen_jax.data import idx, registry
from gen_jax.errors import DatasetError


def _cfg(**kw) -> ml_collections.ConfigDict:
  base = dict(name="mnist", data_dir=None, tfds_dir=None, path=None, binarization=None,
              test_fraction=0.1, num_train=None, num_test=None, seed=0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def _write_idx(path: pathlib.Path, arr: np.ndarray, magic: int | None = None, gz: bool = True) -> pathlib.Path:
  magic = (0x800 | arr.ndim) if magic is None else magic
  data = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
  path.write_bytes(gzip.compress(data) if gz else data)
  return path


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
  x = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
  y = np.array([7, 0, 9], np.uint8)
  xp = _write_idx(tmp_path / ("img.gz" if gz else "img"), x, gz=gz)
  yp = _write_idx(tmp_path / ("lab.gz" if gz else "lab"), y, gz=gz)
  np.testing.assert_array_equal(idx.read_idx_images(xp), x)
  np.testing.assert_array_equal(idx.read_idx_labels(yp), y)
  idx.check_counts(x, y, xp, yp)
  with pytest.raises(DatasetError, match="2 labels"):
    idx.check_counts(x, y[:2], xp, yp)


def test_idx_bad_files_name_the_path(tmp_path):
  x = np.zeros((4, 3, 3), np.uint8)
  good = gzip.compress(_write_idx(tmp_path / "plain", x, gz=False).read_bytes())
  cases = {
      "truncated.gz": good[: len(good) // 2],
      "corrupt.gz": good[:10] + b"\x00garbage" * 8,
      "short-payload": (tmp_path / "plain").read_bytes()[:-5],
      "header-only": b"\x00\x00",
  }
  for name, data in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DatasetError) as e:
      idx.read_idx_images(tmp_path / name)
    assert str(tmp_path / name) in str(e.value) and "SHA256SUMS" in str(e.value), name
  labels = _write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))
  with pytest.raises(DatasetError, match="0x00000801.*expected 0x00000803") as e:
    idx.read_idx_images(labels)
  assert str(labels) in str(e.value)


# ---------------------------------------------------------------- MNIST via TFDS

@pytest.fixture(scope="module")
def mnist(shared_data_dir, tfds_cache_dir) -> Dataset:
  return load_dataset(_cfg(name="mnist", data_dir=str(shared_data_dir), tfds_dir=str(tfds_cache_dir)))


def test_mnist_via_tfds(mnist, shared_data_dir, tfds_cache_dir):
  assert mnist.train.images.shape == (60000, 28, 28, 1) and mnist.test.images.shape == (10000, 28, 28, 1)
  assert mnist.train.images.dtype == np.uint8 and mnist.train.labels.dtype == np.int32
  assert mnist.image_shape == (28, 28, 1) and mnist.num_classes == 10 and mnist.binarization is None
  assert set(np.unique(mnist.train.labels)) == set(range(10))
  hist = np.bincount(mnist.test.labels, minlength=10)
  assert hist.sum() == 10000 and hist.min() > 800
  # Order preserved: identical to the raw IDX files.
  raw_x = idx.read_idx_images(shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz")
  raw_y = idx.read_idx_labels(shared_data_dir / "mnist" / "train-labels-idx1-ubyte.gz")
  assert mnist.train.labels[0] == raw_y[0] == 5
  np.testing.assert_array_equal(mnist.train.labels, raw_y)
  np.testing.assert_array_equal(mnist.train.images[[0, 12345, -1], :, :, 0], raw_x[[0, 12345, -1]])
  assert "gen_jax_mnist" in mnist.source and str(shared_data_dir / "mnist") in mnist.source
  assert (tfds_cache_dir / "gen_jax_mnist" / "1.0.0" / "dataset_info.json").is_file()


def test_fast_decoding_matches_tfds(mnist, tfds_cache_dir):
  from gen_jax.data import tfds_builders
  builder = tfds_builders.get_builder("mnist", tfds_cache_dir)
  keys = [1, 777, 59998]
  images, labels = tfds_builders._decode_with_tfds(builder.as_data_source("train"), keys)
  np.testing.assert_array_equal(images, mnist.train.images[keys])
  np.testing.assert_array_equal(labels, mnist.train.labels[keys])


def test_second_load_reuses_prepared_files(mnist, tfds_cache_dir, shared_data_dir, monkeypatch):
  from gen_jax.data import tfds_builders
  files = sorted((tfds_cache_dir / "gen_jax_mnist").rglob("*.array_record*"))
  mtimes = [f.stat().st_mtime_ns for f in files]

  def no_rebuild(*a, **k):
    raise AssertionError("rebuilt")
  monkeypatch.setattr(tfds_builders, "prepare", no_rebuild)
  monkeypatch.setattr(tfds_builders._IdxBuilder, "_split_generators", no_rebuild)
  small = load_dataset(_cfg(name="mnist", data_dir=str(shared_data_dir), tfds_dir=str(tfds_cache_dir),
                            num_train=100, num_test=30))
  assert [f.stat().st_mtime_ns for f in files] == mtimes and files
  assert "(reused)" in small.source
  # num_train / num_test keep the first N, in their own (not view-of-full) arrays.
  assert small.train.images.shape == (100, 28, 28, 1) and small.test.labels.shape == (30,)
  assert small.train.images.base is None
  np.testing.assert_array_equal(small.train.images, mnist.train.images[:100])
  np.testing.assert_array_equal(small.test.labels, mnist.test.labels[:30])


def test_fashion_mnist_loads(shared_data_dir, tfds_cache_dir):
  ds = load_dataset(_cfg(name="fashion_mnist", data_dir=str(shared_data_dir), tfds_dir=str(tfds_cache_dir),
                         num_train=500))
  raw_y = idx.read_idx_labels(shared_data_dir / "fashion_mnist" / "train-labels-idx1-ubyte.gz")
  assert ds.train.images.shape == (500, 28, 28, 1) and ds.test.images.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(ds.train.labels, raw_y[:500])
  assert np.bincount(ds.test.labels, minlength=10).tolist() == [1000] * 10
  assert "gen_jax_fashion_mnist" in ds.source


def test_binarized_mnist(mnist, shared_data_dir, tfds_cache_dir):
  kw = dict(name="binarized_mnist", data_dir=str(shared_data_dir), tfds_dir=str(tfds_cache_dir),
            num_train=300, num_test=40)
  dyn = load_dataset(_cfg(**kw))
  assert dyn.binarization == "dynamic"
  np.testing.assert_array_equal(dyn.train.images, mnist.train.images[:300])
  a = load_dataset(_cfg(binarization="fixed", seed=3, **kw))
  b = load_dataset(_cfg(binarization="fixed", seed=3, **kw))
  c = load_dataset(_cfg(binarization="fixed", seed=4, **kw))
  assert a.binarization == "fixed" and set(np.unique(a.train.images)) == {0, 255}
  np.testing.assert_array_equal(a.train.images, b.train.images)
  np.testing.assert_array_equal(a.test.images, b.test.images)
  assert not np.array_equal(a.train.images, c.train.images)
  x = mnist.train.images[:300]
  assert np.all(a.train.images[x == 0] == 0) and np.all(a.train.images[x == 255] == 255)
  kw["num_train"] = 50  # slicing does not change the draws of the kept prefix
  np.testing.assert_array_equal(load_dataset(_cfg(binarization="fixed", seed=3, **kw)).train.images,
                                a.train.images[:50])
  with pytest.raises(DatasetError, match="dynamic"):
    load_dataset(_cfg(binarization="sometimes", **kw))


def test_missing_data_dir_lists_searched_places(tmp_path, monkeypatch):
  monkeypatch.setenv("GEN_JAX_DATA_DIR", str(tmp_path / "env"))
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.setattr(registry, "SHARED_DATA_DIR", tmp_path / "shared")
  (tmp_path / "env" / "mnist").mkdir(parents=True)
  with pytest.raises(DatasetError) as e:
    load_dataset(_cfg(name="mnist", data_dir=None, tfds_dir=str(tmp_path / "tfds")))
  msg = str(e.value)
  for place in ("env/mnist", "home/gen_jax_data/mnist", "shared/mnist"):
    assert str(tmp_path / place) in msg, place
  assert "missing train-images-idx3-ubyte.gz" in msg
  assert "GEN_JAX_DATA_DIR" in msg and "ossci-datasets" in msg and "t10k-labels-idx1-ubyte.gz" in msg


def test_explicit_data_dir_does_not_fall_back(tmp_path, monkeypatch, shared_data_dir):
  """An explicit data.data_dir that lacks the files is an error, even if the files exist elsewhere."""
  monkeypatch.setenv("GEN_JAX_DATA_DIR", str(shared_data_dir))
  (tmp_path / "given" / "mnist").mkdir(parents=True)
  with pytest.raises(DatasetError) as e:
    load_dataset(_cfg(name="mnist", data_dir=str(tmp_path / "given"), tfds_dir=str(tmp_path / "tfds")))
  msg = str(e.value)
  assert str(tmp_path / "given" / "mnist") in msg and "missing train-images-idx3-ubyte.gz" in msg
  assert str(shared_data_dir) not in msg


def test_unknown_name_lists_known_names():
  with pytest.raises(DatasetError) as e:
    load_dataset(_cfg(name="cifar11"))
  assert "cifar11" in str(e.value) and all(n in str(e.value) for n in DATASET_NAMES)


# ---------------------------------------------------------------- user images

def _save(path: pathlib.Path, value: int, size=(5, 4), mode="L") -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
  Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def test_image_folder_with_classes(tmp_path):
  for i in range(6):
    _save(tmp_path / "imgs" / "cat" / f"{i}.png", 10 + i)
  for i in range(4):
    _save(tmp_path / "imgs" / "dog" / f"{i}.jpg", 100 + 20 * i)
  cfg = _cfg(name="image_folder", path=str(tmp_path / "imgs"), test_fraction=0.2, seed=1)
  ds = load_dataset(cfg)
  assert ds.image_shape == (4, 5, 1) and ds.num_classes == 2
  assert len(ds.train) == 8 and len(ds.test) == 2
  for split in (ds.train, ds.test):  # labels stay attached to their images (cat < 50 <= dog)
    np.testing.assert_array_equal(split.labels, (split.images[:, 0, 0, 0] >= 50).astype(np.int32))
  again = load_dataset(cfg)
  np.testing.assert_array_equal(again.test.images, ds.test.images)
  assert "2 classes ['cat', 'dog']" in ds.source
  small = load_dataset(_cfg(name="image_folder", path=str(tmp_path / "imgs"), num_train=3))
  assert len(small.train) == 3 and small.train.images.base is None


def test_image_folder_train_test_and_colour(tmp_path):
  _save(tmp_path / "d" / "train" / "a.png", 1)
  _save(tmp_path / "d" / "train" / "b.png", 2, mode="RGB")
  _save(tmp_path / "d" / "train" / "c.png", 3, mode="RGBA")
  _save(tmp_path / "d" / "test" / "z.png", 4)
  ds = load_dataset(_cfg(name="image_folder", path=str(tmp_path / "d")))
  assert ds.image_shape == (4, 5, 3) and ds.train.labels is None and ds.num_classes is None
  assert len(ds.train) == 3 and len(ds.test) == 1
  assert ds.train.images[:, 0, 0, 0].tolist() == [1, 2, 3] and ds.test.images[0, 0, 0].tolist() == [4, 4, 4]
  assert "grey images converted to RGB" in ds.source


def test_image_folder_errors(tmp_path):
  _save(tmp_path / "mixed" / "a.png", 1, size=(5, 4))
  _save(tmp_path / "mixed" / "b.png", 1, size=(6, 6))
  with pytest.raises(DatasetError) as e:
    load_dataset(_cfg(name="image_folder", path=str(tmp_path / "mixed")))
  msg = str(e.value)
  assert str(tmp_path / "mixed" / "a.png") in msg and str(tmp_path / "mixed" / "b.png") in msg
  assert "5x4" in msg and "6x6" in msg and "resize" in msg
  _save(tmp_path / "bad" / "a.png", 1)
  (tmp_path / "bad" / "b.png").write_bytes(b"not a png")
  with pytest.raises(DatasetError, match=str(tmp_path / "bad" / "b.png")):
    load_dataset(_cfg(name="image_folder", path=str(tmp_path / "bad")))
  (tmp_path / "empty").mkdir()
  with pytest.raises(DatasetError, match="No images"):
    load_dataset(_cfg(name="image_folder", path=str(tmp_path / "empty")))
  with pytest.raises(DatasetError, match="needs data.path"):
    load_dataset(_cfg(name="image_folder"))


def test_npz(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
  y = rng.integers(0, 3, 20)
  np.savez(tmp_path / "full.npz", x_train=x[:15], y_train=y[:15], x_test=x[15:], y_test=y[15:])
  ds = load_dataset(_cfg(name="npz", path=str(tmp_path / "full.npz")))
  assert ds.image_shape == (6, 6, 1) and len(ds.train) == 15 and len(ds.test) == 5
  np.testing.assert_array_equal(ds.test.labels, y[15:])
  assert ds.num_classes == int(y.max()) + 1
  np.savez(tmp_path / "images.npz", images=rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8))
  ds = load_dataset(_cfg(name="npz", path=str(tmp_path / "images.npz"), test_fraction=0.3))
  assert len(ds.train) == 7 and len(ds.test) == 3 and ds.train.labels is None and ds.num_classes is None
  np.savez(tmp_path / "float.npz", images=np.zeros((3, 4, 4), np.float32))
  with pytest.raises(DatasetError, match="uint8"):
    load_dataset(_cfg(name="npz", path=str(tmp_path / "float.npz")))
  with pytest.raises(DatasetError, match="num_train"):
    load_dataset(_cfg(name="npz", path=str(tmp_path / "full.npz"), num_train=-1))


def test_array_split_validates():
  with pytest.raises(DatasetError, match="uint8"):
    ArraySplit(np.zeros((2, 4, 4, 1), np.float32), None)
  with pytest.raises(DatasetError, match="int32"):
    ArraySplit(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3, np.int32))


@pytest.mark.parametrize("shape", [(50, 28, 28, 1), (50, 5, 3, 2), (50, 7)])
def test_gather_rows_equals_fancy_indexing(shape):
  from gen_jax.data.sampler import gather_rows
  images = jnp.asarray(np.random.RandomState(0).randint(0, 256, shape).astype(np.uint8))
  index = jnp.asarray([3, 0, 49, 3, 17], jnp.int32)
  out = jax.jit(gather_rows)(images, index)
  assert out.shape == (5,) + shape[1:] and out.dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(out), np.asarray(images)[np.asarray(index)])


def test_nonexistent_data_dir_fails_even_when_a_prepared_copy_exists(tmp_path, tfds_cache_dir):
  """A wrong --config.data.data_dir is an error naming the key, the path and the fix, not silently ignored."""
  missing = tmp_path / "nonexistent" / "data"
  for name in ("mnist", "binarized_mnist", "stacked_mnist"):
    with pytest.raises(DatasetError) as e:
      load_dataset(_cfg(name=name, data_dir=str(missing), tfds_dir=str(tfds_cache_dir)))
    msg = str(e.value)
    assert f"config.data.data_dir='{missing}'" in msg and "does not exist" in msg, msg
    assert "Fix: pass the folder that holds mnist/" in msg and "--config.data.data_dir=)" in msg
  a_file = tmp_path / "file"
  a_file.write_text("x")
  with pytest.raises(DatasetError, match="is a file, not a folder"):
    load_dataset(_cfg(name="mnist", data_dir=str(a_file), tfds_dir=str(tfds_cache_dir)))
