"""CIFAR-10 as a named dataset: the readers of the binary / python releases and of a JPEG tar, written here in the
exact formats with a few images each; the TFDS builder over them; the search error; order independent of files."""
from __future__ import annotations

import io
import pathlib
import pickle
import random
import tarfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gen_jax.data import cifar10, load_dataset, registry
from gen_jax.errors import DatasetError

N_PER_BATCH = 4  # records per synthetic batch file: train 5 x 4 = 20, test 4


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


def _release_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The pixels and labels the synthetic release holds, per batch file name."""
  names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
  return {name: _images(N_PER_BATCH, i) for i, name in enumerate(names)}


def _expected(batches) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
  return {"train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
          "test": batches["test_batch"]}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_binary_release(folder: pathlib.Path, shuffle_members: bool = False) -> dict:
  """<folder>/cifar10/cifar-10-binary.tar.gz in the release's format: per record 1 label byte + 3072 CHW bytes."""
  batches = _release_arrays()
  (folder / "cifar10").mkdir(parents=True, exist_ok=True)
  names = list(batches)
  if shuffle_members:
    random.Random(1).shuffle(names)
  with tarfile.open(folder / "cifar10" / "cifar-10-binary.tar.gz", "w:gz") as tar:
    _add(tar, "cifar-10-batches-bin/batches.meta.txt", "\n".join(cifar10.CLASS_NAMES).encode())
    for name in names:
      x, y = batches[name]
      records = np.concatenate([y.astype(np.uint8)[:, None], x.transpose(0, 3, 1, 2).reshape(len(x), -1)], axis=1)
      _add(tar, f"cifar-10-batches-bin/{name}.bin", records.tobytes())
  return _expected(batches)


def write_python_release(folder: pathlib.Path) -> dict:
  """<folder>/cifar10/cifar-10-python.tar.gz: pickled dicts with b'data' [N, 3072] CHW rows and b'labels'."""
  batches = _release_arrays()
  (folder / "cifar10").mkdir(parents=True, exist_ok=True)
  with tarfile.open(folder / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tar:
    for name, (x, y) in batches.items():
      d = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
           b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"filenames": [b"f.png"] * len(x)}
      _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps(d, protocol=2))
  return _expected(batches)


def write_jpeg_tar(path: pathlib.Path, per_class: dict[str, int], member_order_seed: int = 0) -> None:
  """A tar of <split>/<class>/NNNN.jpg written by PIL; image (split, class, k) is a flat colour coding all three,
  so the decoded pixels say which file they came from despite JPEG's loss."""
  path.parent.mkdir(parents=True, exist_ok=True)
  entries = [(split, c, k) for split, n in per_class.items() for c in range(10) for k in range(n)]
  random.Random(member_order_seed).shuffle(entries)
  with tarfile.open(path, "w:gz") as tar:
    for split, c, k in entries:
      buf = io.BytesIO()
      colour = (20 * c + 10, 60 * k + 10, 200 if split == "train" else 40)
      Image.new("RGB", (32, 32), colour).save(buf, format="JPEG", quality=75)
      _add(tar, f"{split}/{cifar10.CLASS_NAMES[c]}/{k:04d}.jpg", buf.getvalue())


def _cfg(**kw) -> ml_collections.ConfigDict:
  base = dict(name="cifar10", data_dir="", tfds_dir="", num_train=0, num_test=0, seed=0, classes=())
  base.update(kw)
  return ml_collections.ConfigDict(base)


# --- readers ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("writer,reader", [(write_binary_release, cifar10.read_binary),
                                           (write_python_release, cifar10.read_python)])
def test_original_release_readers(tmp_path, writer, reader):
  expected = writer(tmp_path)
  path = next((tmp_path / "cifar10").iterdir())
  got = reader(path)
  for split in ("train", "test"):
    x, y = got[split]
    assert x.dtype == np.uint8 and x.shape == (len(expected[split][0]), 32, 32, 3)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x, expected[split][0])
    np.testing.assert_array_equal(y, expected[split][1])


@pytest.mark.parametrize("writer,kind", [(write_binary_release, cifar10.BINARY),
                                         (write_python_release, cifar10.PYTHON)])
def test_extracted_release_folders_read_like_their_archives(tmp_path, writer, kind):
  """The release unpacked (cifar10/cifar-10-batches-bin/ or -py/, the archive gone) is found, read to the same
  arrays, fingerprinted by its files (a changed batch file changes the cache identity), and an incomplete folder
  names the missing batch."""
  expected = writer(tmp_path)
  archive = tmp_path / "cifar10" / kind.names[0]
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "cifar10", filter="data")
  archive.unlink()
  src = cifar10.find_source([("dir", tmp_path)], explicit=True)
  assert src.kind is kind and src.path == tmp_path / "cifar10" / kind.names[1] and src.path.is_dir()
  got = cifar10.read_source(src)
  for split in ("train", "test"):
    np.testing.assert_array_equal(got[split][0], expected[split][0])
    np.testing.assert_array_equal(got[split][1], expected[split][1])
  before = cifar10.fingerprint(src)
  batch = next(p for p in sorted(src.path.iterdir()) if "test_batch" in p.name)
  data = bytearray(batch.read_bytes())
  data[-1] ^= 1
  batch.write_bytes(bytes(data))
  assert cifar10.fingerprint(src) != before
  batch.unlink()
  with pytest.raises(DatasetError, match=rf"lacks {batch.name}: not a complete CIFAR-10 release"):
    cifar10.read_source(src)


def test_binary_order_is_independent_of_member_order(tmp_path):
  write_binary_release(tmp_path / "a")
  a = cifar10.read_binary(tmp_path / "a/cifar10/cifar-10-binary.tar.gz")
  write_binary_release(tmp_path / "b", shuffle_members=True)
  b = cifar10.read_binary(tmp_path / "b/cifar10/cifar-10-binary.tar.gz")
  for split in ("train", "test"):
    np.testing.assert_array_equal(a[split][0], b[split][0])


def test_binary_truncated_file_is_named(tmp_path):
  (tmp_path / "cifar10").mkdir()
  with tarfile.open(tmp_path / "cifar10" / "cifar-10-binary.tar.gz", "w:gz") as tar:
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
      _add(tar, f"cifar-10-batches-bin/{name}.bin", bytes(3073 * 2 - 5))
  with pytest.raises(DatasetError, match="data_batch_1.bin is 6141 bytes"):
    cifar10.read_binary(tmp_path / "cifar10" / "cifar-10-binary.tar.gz")


def test_python_reader_refuses_code_in_pickles(tmp_path):
  (tmp_path / "cifar10").mkdir()

  class Evil:
    def __reduce__(self):
      return (print, ("pwned",))
  with tarfile.open(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "w:gz") as tar:
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
      _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps({b"data": Evil()}, protocol=2))
  with pytest.raises(DatasetError, match="not a CIFAR-10 python batch.*unexpected object .*print"):
    cifar10.read_python(tmp_path / "cifar10" / "cifar-10-python.tar.gz")


def test_jpeg_tar_reader_labels_order_and_balance(tmp_path):
  per_class = {"train": 3, "test": 2}
  write_jpeg_tar(tmp_path / "a.tar.gz", per_class, member_order_seed=0)
  write_jpeg_tar(tmp_path / "b.tar.gz", per_class, member_order_seed=7)
  a, b = cifar10.read_jpeg_tar(tmp_path / "a.tar.gz", workers=2), cifar10.read_jpeg_tar(tmp_path / "b.tar.gz")
  for split, n in per_class.items():
    x, y = a[split]
    assert x.shape == (10 * n, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    np.testing.assert_array_equal(x, b[split][0])     # same pixels in the same order, whatever the member order
    np.testing.assert_array_equal(y, b[split][1])
    # Stored order: classes in turn, files by name within a class: (c0 k0, c1 k0, ..., c9 k0, c0 k1, ...).
    np.testing.assert_array_equal(y, np.tile(np.arange(10), n))
    mean = x.reshape(len(x), -1, 3).mean(axis=1)
    np.testing.assert_allclose(mean[:, 0], 20 * y + 10, atol=4)                    # the class's colour
    np.testing.assert_allclose(mean[:, 1], 60 * np.repeat(np.arange(n), 10) + 10, atol=4)   # the file's
    np.testing.assert_allclose(mean[:, 2], 200 if split == "train" else 40, atol=4)


def test_jpeg_order_interleaves_sorted_classes():
  entries = [(1, "0001.jpg"), (0, "0002.jpg"), (1, "0000.jpg"), (0, "0000.jpg"), (0, "0001.jpg")]
  assert cifar10.jpeg_order(entries) == [3, 2, 4, 0, 1]


def test_jpeg_unknown_class_folder(tmp_path):
  with tarfile.open(tmp_path / "x.tar.gz", "w:gz") as tar:
    _add(tar, "train/plane/0000.jpg", b"x")
  with pytest.raises(DatasetError, match="class folder 'plane'.*airplane"):
    cifar10.read_jpeg_tar(tmp_path / "x.tar.gz")


# --- search and the named dataset -------------------------------------------------------------------------------

def test_no_source_lists_every_place_searched(tmp_path, monkeypatch):
  monkeypatch.setenv(registry.ENV_DATA_DIR, str(tmp_path / "env"))
  monkeypatch.setattr(registry, "SHARED_DATA_DIR", tmp_path / "shared")
  monkeypatch.setattr(registry, "HOME_DATA_DIR", str(tmp_path / "home"))
  with pytest.raises(DatasetError) as e:
    load_dataset(_cfg(tfds_dir=str(tmp_path / "tfds")))
  msg = str(e.value)
  for base in ("env", "home", "shared"):
    for tail in ("cifar10/cifar-10-binary.tar.gz", "cifar10/cifar-10-python.tar.gz",
                 "cifar10_jpeg/cifar10_jpeg.tar.gz"):
      assert str(tmp_path / base / tail) in msg
  assert "config data.data_dir: not set" in msg and "cs.toronto.edu" in msg


def test_explicit_data_dir_is_the_only_place(tmp_path):
  (tmp_path / "mine").mkdir()
  write_binary_release(tmp_path / "other")
  with pytest.raises(DatasetError) as e:
    cifar10.find_source([("config data.data_dir", tmp_path / "mine"), ("$GEN_JAX_DATA_DIR", tmp_path / "other")],
                        explicit=True)
  assert str(tmp_path / "other") not in str(e.value)


def test_originals_are_preferred_to_the_jpeg_copy(tmp_path):
  write_jpeg_tar(tmp_path / "first" / "cifar10_jpeg" / "cifar10_jpeg.tar.gz", {"train": 1, "test": 1})
  write_python_release(tmp_path / "second")
  src = cifar10.find_source([("a", tmp_path / "first"), ("b", tmp_path / "second")], explicit=False)
  assert src.kind is cifar10.PYTHON


@pytest.mark.parametrize("kind", ["binary", "jpeg"])
def test_named_dataset_through_tfds(tmp_path, kind):
  if kind == "binary":
    expected = write_binary_release(tmp_path / "data")
  else:
    write_jpeg_tar(tmp_path / "data" / "cifar10_jpeg" / "cifar10_jpeg.tar.gz", {"train": 2, "test": 1})
    expected = {s: v for s, v in cifar10.read_jpeg_tar(
        tmp_path / "data" / "cifar10_jpeg" / "cifar10_jpeg.tar.gz").items()}
  cfg = _cfg(data_dir=str(tmp_path / "data"), tfds_dir=str(tmp_path / "tfds"))
  ds = load_dataset(cfg)
  assert ds.name == "cifar10" and ds.num_classes == 10 and ds.image_shape == (32, 32, 3)
  assert ds.class_names == cifar10.CLASS_NAMES
  for split in ("train", "test"):
    got = getattr(ds, split)
    np.testing.assert_array_equal(got.images, expected[split][0])
    np.testing.assert_array_equal(got.labels, expected[split][1])
  desc = {"binary": "original binary", "jpeg": "JPEG re-encoding (lossy, ~quality 75)"}[kind]
  assert f"CIFAR-10 {desc}" in ds.source and "(built)" in ds.source and f"gen_jax_cifar10/{kind}" in ds.source
  again = load_dataset(_cfg(data_dir=str(tmp_path / "data"), tfds_dir=str(tmp_path / "tfds"), num_train=3))
  assert "(reused)" in again.source and len(again.train) == 3
  np.testing.assert_array_equal(again.train.images, expected["train"][0][:3])
  line = again.summary_line()
  assert "cifar10: 3 train" in line and "airplane" in line and "32x32x3 (colour)" in line and desc in line


def test_replaced_archive_rebuilds_the_cache_and_short_splits_are_recorded(tmp_path):
  """A cache is tied to the sha256 of the file it was built from: an archive of the same kind replaced by another
  rebuilds it (not the old images under the new name); a cache without a source record (older code) is adopted.
  Splits smaller than the release's 50000 / 10000 say so in the data source that every protocol records."""
  from gen_jax.data import tfds_builders
  archive = tmp_path / "data" / "cifar10_jpeg" / "cifar10_jpeg.tar.gz"
  cfg = _cfg(data_dir=str(tmp_path / "data"), tfds_dir=str(tmp_path / "tfds"))
  write_jpeg_tar(archive, {"train": 1, "test": 1})
  first = load_dataset(cfg)
  assert "(built)" in first.source and len(first.train) == 10
  assert "10 train / 10 test images, not the release's 50000 / 10000" in first.source
  builder = tfds_builders.get_builder("cifar10", tmp_path / "tfds", "jpeg")
  assert tfds_builders.read_source_record(builder)["sha256"] == cifar10.fingerprint(cifar10.Source(cifar10.JPEG,
                                                                                                  archive))
  assert "(reused)" in load_dataset(cfg).source
  write_jpeg_tar(archive, {"train": 2, "test": 1})          # same kind, same name, other images
  second = load_dataset(cfg)
  assert "(rebuilt: the source changed)" in second.source and len(second.train) == 20
  np.testing.assert_array_equal(second.train.images, cifar10.read_jpeg_tar(archive)["train"][0])
  # A cache built before source records existed is adopted for the present source, then checked as usual.
  (pathlib.Path(builder.data_path) / tfds_builders.SOURCE_RECORD).unlink()
  assert "(reused)" in load_dataset(cfg).source and tfds_builders.read_source_record(builder) is not None


def test_real_jpeg_archive_first_members_parse(shared_data_dir):
  """The shared JPEG archive's layout: its first members are train|test/<CIFAR-10 class>/NNNN.jpg, 32x32 RGB."""
  path = shared_data_dir / "cifar10_jpeg" / "cifar10_jpeg.tar.gz"
  if not path.exists():
    pytest.skip(f"{path} absent")
  seen = 0
  with tarfile.open(path) as tar:
    for m in tar:
      if not m.isfile():
        continue
      split, cls, _ = m.name.split("/")[-3:]
      assert split in ("train", "test") and cls in cifar10.CLASS_NAMES
      x = cifar10._decode_jpeg((m.name, tar.extractfile(m).read()))
      assert x.shape == (32, 32, 3)
      seen += 1
      if seen == 5:
        break
  assert seen == 5


# --- the colour configs on a synthetic binary release ------------------------------------------------------------
# The VAE and the VAE-GAN train two steps at 32x32x3 here (compiled and run: metrics finite, bits/dim in range,
# colour sample grids); the GAN family trains at 32x32x3 in test_configs_end_to_end (configs/gan.py:folder,conditional,
# DCGAN on a colour folder). The other colour configs are built on their data and their init, train step and image
# function traced: every shape at 32x32x3 is checked without the XLA compile, which is most of a config's test time.
# Widths are the smallest that keep each architecture; the colour-specific values are asserted on the config as loaded.

# SNGAN trains with n_critic 2 (two D steps on two real batches per G step, its linear rate schedules, the 8x8 blocks).
TRAINED_SPECS = ["configs/vae.py:conv,cifar10", "configs/vaegan.py:cifar10", "configs/gan.py:cifar10,sngan"]
TRACED_SPECS = ["configs/gan.py:cifar10", "configs/gan.py:cifar10,wgan_gp", "configs/gan.py:cifar10,sngan,conditional",
                "configs/gan.py:cifar10,conditional", "configs/vaegan.py:cifar10,conditional",
                "configs/vae.py:conv,folder", "configs/vae.py:mlp,cifar10"]
SMALL = {"vae": ("model.features=(8,16)", "model.latent_dim=8"),
         "gan": ("model.g_width=8", "model.d_width=8", "gan.n_critic=1"),   # one D step and one G step
         "vaegan": ("model.g_width=8", "model.d_width=8", "model.features=(8,16)", "model.latent_dim=8")}


@pytest.fixture(scope="module")
def cifar_dirs(tmp_path_factory):
  """A synthetic binary release (5 x 16 train, 16 test records) and a TFDS folder, shared by the config tests."""
  global N_PER_BATCH
  root = tmp_path_factory.mktemp("cifar_configs")
  saved, N_PER_BATCH = N_PER_BATCH, 16
  try:
    write_binary_release(root / "data")
  finally:
    N_PER_BATCH = saved
  return root / "data", root / "tfds"


def _colour_folder(root: pathlib.Path) -> pathlib.Path:
  rng = np.random.default_rng(0)
  for cls in ("cats", "dogs"):
    (root / cls).mkdir(parents=True)
    for i in range(24):
      Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
  return root


def _colour_config(spec: str, cifar_dirs, tmp_path: pathlib.Path):
  """The config of `spec` on the synthetic data at the smallest widths, after checking its colour-specific values."""
  from gen_jax import config as config_lib
  from conftest import REPO_ROOT

  data_dir, tfds_dir = cifar_dirs
  config = config_lib.load_config_file(str(REPO_ROOT / spec))
  family = config.model.family
  assert config.data.name == ("image_folder" if "folder" in spec else "cifar10")
  if family == "vae":   # a discrete likelihood over 0..255 and the colour eval protocol
    assert config.model.likelihood == "logistic" and config.model.arch == ("mlp" if "mlp" in spec else "conv")
    assert (config.eval.num_importance_samples, config.eval.num_examples) == (100, 2000)
    if "conv,cifar10" in spec:
      assert (tuple(config.model.features), config.model.latent_dim) == ((64, 128), 64)
  if "sngan" in spec:   # Mimicry's setting: D halving to 8x8 then two blocks there, rates falling linearly to 0
    assert config.model.d_layout == "sngan" and config.gan.n_critic == 5
    assert config.optimizer.schedule == config.d_optimizer.schedule == "linear"
  overrides = [f"data.data_dir={data_dir}", f"data.tfds_dir={tfds_dir}", "data.batch_size=16", "data.num_train=0",
               "data.num_test=0", "train.num_steps=2", "train.log_every=1", "train.checkpoint_every=2",
               "train.sample_every=0", "train.eval_every=0", *SMALL[family]]
  if "sngan" in spec and spec in TRAINED_SPECS:
    overrides.append("gan.n_critic=2")
  if "mlp" in spec:
    overrides += ["model.hidden=(16,)"]
  if "folder" in spec:
    overrides += [f"data.path={_colour_folder(tmp_path / 'images')}", "data.test_fraction=0.25"]
  config_lib.apply_overrides(config, overrides)
  return config_lib.validate_config(config)


def _check_data_line(spec: str, line: str) -> None:
  if "folder" in spec:
    assert "Data: image_folder: 36 train / 12 test examples, 2 classes, images 32x32x3 (colour)" in line
    assert "48 files" in line and "['cats', 'dogs']" in line
  else:
    assert "Data: cifar10: 80 train / 16 test examples, 10 classes (airplane, automobile," in line
    assert "CIFAR-10 original binary" in line


@pytest.mark.parametrize("spec", TRAINED_SPECS)
def test_colour_config_trains_a_few_steps(spec, cifar_dirs, tmp_path, capsys):
  import jax

  from gen_jax import parallel
  from gen_jax.train import loop
  from gen_jax.train.metrics_log import read_metrics

  config = _colour_config(spec, cifar_dirs, tmp_path)
  summary = loop.train(config, tmp_path / "run", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  assert summary["step"] == 2
  _check_data_line(spec, capsys.readouterr().out)   # the one line about the data loaded
  rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
  assert [r["step"] for r in rows] == [1, 2]
  numbers = [v for r in rows for k, v in r.items() if k not in ("step", "split")]
  assert numbers and all(np.isfinite(v) for v in numbers)
  if "vae.py" in spec:   # bits/dim over 32 * 32 * 3 dims, from the discrete likelihood
    assert any("bits_per_dim" in r for r in rows)
    assert all(0 < r["bits_per_dim"] < 16 for r in rows if "bits_per_dim" in r)
  assert (tmp_path / "run" / "checkpoints" / "2").is_dir()
  samples = list((tmp_path / "run" / "images").glob("samples_*.png"))
  assert samples and np.asarray(Image.open(samples[0])).shape[-1] == 3   # colour grids


@pytest.mark.parametrize("spec", TRACED_SPECS)
def test_colour_config_builds_and_traces(spec, cifar_dirs, tmp_path):
  import jax

  from gen_jax import parallel
  from gen_jax.train import loop
  from gen_jax.train import step as step_lib

  config = _colour_config(spec, cifar_dirs, tmp_path)
  run = loop.setup(config, parallel.make_mesh(jax.devices()[:1]))
  assert run.dataset.image_shape == (32, 32, 3)
  _check_data_line(spec, loop.data_summary_line(run.dataset))
  state = run.abstract_state()
  new_state, metrics = jax.eval_shape(step_lib.make_train_step(run.family, run.sampler), state, run.data, run.keys)
  # The update keeps every array of the state as it is (shape and dtype) and reports float scalars.
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
    assert (before.shape, before.dtype) == (after.shape, after.dtype)
  assert metrics and all(m.shape == () and np.issubdtype(m.dtype, np.floating) for m in metrics.values())
  if "wgan_gp" in spec:
    assert "gradient_penalty" in metrics
  batch = loop._visual_batch(run)
  images = jax.eval_shape(lambda models, key: run.family.visualize(run.family.sampling_models(models), batch, key),
                          state.models, run.keys["visualize"])
  assert images["samples"].shape[1:] == (32, 32, 3)


# --- messages for colour data ------------------------------------------------------------------------------------

def _load_config(spec: str, *overrides: str):
  from gen_jax import config as config_lib
  from conftest import REPO_ROOT
  config = config_lib.load_config_file(str(REPO_ROOT / spec))
  config_lib.apply_overrides(config, list(overrides))
  return config_lib.validate_config(config)


@pytest.mark.parametrize("name,pixels", [("cifar10", "colour pixels"), ("image_folder", "grey-level or colour"),
                                         ("mnist", "grey levels")])
def test_bernoulli_refusal_names_the_pixels_and_the_configs_that_fit(name, pixels):
  from gen_jax.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    _load_config("configs/vae.py:conv", f"data.name={name}")
  msg = str(e.value)
  assert pixels in msg and "configs/vae.py:conv,folder" in msg and "likelihood=logistic" in msg
  if name != "mnist":
    assert "grey levels" not in msg


def test_gan_size_error_suggests_vae_configs_that_take_the_size(tmp_path):
  """48x48 colour images: the GAN refuses them, and the configs its message names build on them."""
  from gen_jax.errors import ConfigError
  from gen_jax.nets.gan_layers import num_stages
  from gen_jax.train import loop
  with pytest.raises(ConfigError) as e:
    num_stages(48, 48)
  assert "configs/vae.py:conv,folder" in str(e.value) and "configs/vae.py:mlp,folder" in str(e.value)
  rng = np.random.default_rng(0)
  (tmp_path / "img").mkdir()
  for i in range(8):
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
  for spec, arch in (("configs/vae.py:conv,folder", "conv"), ("configs/vae.py:mlp,folder", "mlp")):
    config = _load_config(spec, f"data.path={tmp_path / 'img'}", "data.batch_size=4", "data.test_fraction=0.25")
    assert config.model.arch == arch and config.model.likelihood == "logistic"
    import jax
    from gen_jax import parallel
    run = loop.setup(config, parallel.make_mesh(jax.devices()[:1]))
    assert run.dataset.image_shape == (48, 48, 3)
    run.abstract_state()   # the networks trace on 48x48x3 (no size or likelihood error)


def test_no_classifier_note_prints_the_data_path_and_the_readme_command(tmp_path, capsys):
  import types
  from gen_jax.data import ArraySplit, Dataset
  from gen_jax.eval.features import feature_net as feature_net_lib
  from gen_jax.eval.training_eval import TrainingEval
  folder = tmp_path / "my images"
  cmd = feature_net_lib.train_command("image_folder", data_path=str(folder))
  assert cmd.startswith("python -m gen_jax.eval.train_feature_net --dataset=image_folder")
  assert f"--data_path='{folder}'" in cmd and "PYTHONPATH" not in cmd
  assert "PYTHONPATH" not in feature_net_lib.train_command("mnist")
  # A named dataset's command carries the configured data_dir, and no placeholder when the default search applies.
  assert feature_net_lib.train_command("cifar10") == "python -m gen_jax.eval.train_feature_net --dataset=cifar10"
  assert feature_net_lib.train_command("cifar10", data_dir="/my data").endswith("--data_dir='/my data'")
  x, y = np.zeros((4, 32, 32, 3), np.uint8), (np.arange(4) % 2).astype(np.int32)
  config = _load_config("configs/gan.py:folder", f"data.path={folder}", "train.eval_every=10")
  ds = Dataset("image_folder", ArraySplit(x, y), ArraySplit(x, y), 2, None, "test")
  assert TrainingEval.create(types.SimpleNamespace(dataset=ds, config=config), config) is None
  out = capsys.readouterr().out
  assert f"--data_path='{folder}' --arch=resnet" in out and "PYTHONPATH" not in out and "<the image folder>" not in out
  # A folder without class sub-folders: no classifier is possible, and the note says so instead of a command.
  ds = Dataset("image_folder", ArraySplit(x, None), ArraySplit(x, None), None, None, "test")
  assert TrainingEval.create(types.SimpleNamespace(dataset=ds, config=config), config) is None
  out = capsys.readouterr().out
  assert "no class labels" in out and "train_feature_net" not in out
  # The missing-classifier error gives the colour classifier's real cost, not "a few minutes".
  with pytest.raises(Exception, match="about two hours"):
    feature_net_lib.load_feature_net(tmp_path / "nothing" / "cifar10", "cifar10")


def test_eval_decides_config_only_skips_before_loading_data():
  from gen_jax.eval import evaluate
  from gen_jax.eval.suite import static_skips
  config = _load_config("configs/gan.py:folder", "data.path=/nonexistent", "data.batch_size=16")
  groups = ("likelihood", "samples", "modes", "latent", "cas")
  assert set(static_skips(config, groups)) == set(groups)
  assert "your own data" in static_skips(config, ("samples",))["samples"]
  assert static_skips(config, ("imputation",)) == {}
  config.eval.suites = ("samples", "cas")
  small = evaluate.config_for_loading(config)
  assert small.data.num_train == 16 and small.data.num_test == 1 and config.data.num_train == 0
  config.eval.suites = ("samples", "imputation")
  assert evaluate.config_for_loading(config) is config
  vae = _load_config("configs/vae.py:conv,folder", "data.path=/nonexistent", "eval.feature_net=/some/classifier")
  assert static_skips(vae, ("likelihood", "samples", "latent", "imputation")) == {}


def test_image_folder_decodes_only_the_examples_kept(tmp_path, monkeypatch):
  from gen_jax.data import image_folder
  rng = np.random.default_rng(0)
  for split, n in (("train", 6), ("test", 4)):
    for cls in ("a", "b"):
      (tmp_path / split / cls).mkdir(parents=True)
      for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
  full = image_folder.load_image_folder(tmp_path)
  decoded = []
  real = image_folder._decode
  monkeypatch.setattr(image_folder, "_decode", lambda f, colour: decoded.append(f) or real(f, colour))
  train, test, num_classes, _ = image_folder.load_image_folder(tmp_path, num_train=3, num_test=2)
  assert len(decoded) == 5 and num_classes == 2
  np.testing.assert_array_equal(train.images, full[0].images[:3])
  np.testing.assert_array_equal(test.labels, full[1].labels[:2])
