"""Project TFDS builders for MNIST, Fashion-MNIST and CIFAR-10 over local raw files.

The builders never touch the network: the raw files are taken from a local
folder passed as TFDS's `manual_dir` (the four IDX files; for CIFAR-10 the
release or JPEG archive that the builder config names, see data/cifar10.py).
Examples are stored as `array_record` (image: uint8 `Tensor(H, W, C)` kept as
raw bytes, no PNG; label: `ClassLabel`) in a fixed order (shuffling disabled),
and are read back through `builder.as_data_source()`, which needs no TensorFlow.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import time
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.proto import tf_example_pb2

from gen_jax.data import cifar10, idx
from gen_jax.errors import DatasetError
from gen_jax.storage.atomic import write_json_atomic

IMAGE_SHAPE = (28, 28, 1)
SPLIT_STEMS = {"train": "train", "test": "t10k"}  # split -> file-name prefix
RAW_FILE_STEMS = tuple(f"{p}-{k}" for p in SPLIT_STEMS.values() for k in ("images-idx3-ubyte", "labels-idx1-ubyte"))
_CHUNK = 10_000  # records per batched read

log = logging.getLogger(__name__)


def read_raw_split(raw_dir: str | os.PathLike, prefix: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """Validated uint8 images [N, 28, 28] and labels [N] of one split straight from the IDX files."""
  raw_dir = pathlib.Path(raw_dir)
  paths = {}
  for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
    path = idx.find_idx_file(raw_dir, f"{prefix}-{kind}")
    if path is None:
      raise DatasetError(
          f"Missing raw file {raw_dir / (prefix + '-' + kind)}.gz (or without .gz). Expected the four files "
          f"{', '.join(s + '.gz' for s in RAW_FILE_STEMS)} in {raw_dir}. Fix: download the missing file into that folder.")
    paths[kind] = path
  images = idx.read_idx_images(paths["images-idx3-ubyte"])
  labels = idx.read_idx_labels(paths["labels-idx1-ubyte"])
  idx.check_counts(images, labels, paths["images-idx3-ubyte"], paths["labels-idx1-ubyte"])
  if images.shape[1:] != IMAGE_SHAPE[:2]:
    raise DatasetError(
        f"{paths['images-idx3-ubyte']} holds {images.shape[1]}x{images.shape[2]} images, expected 28x28. "
        "Fix: use the original MNIST / Fashion-MNIST files (or load other image sizes with name='npz').")
  if labels.size and labels.max() >= num_classes:
    raise DatasetError(
        f"{paths['labels-idx1-ubyte']} holds label {labels.max()}, expected 0..{num_classes - 1}. "
        "Fix: re-download the file and verify it with SHA256SUMS.")
  return images, labels


class _ArrayBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared logic: uint8 image arrays + labels -> ordered array_record examples."""

  VERSION = tfds.core.Version("1.0.0")
  IMAGE_SHAPE: ClassVar[tuple[int, int, int]] = IMAGE_SHAPE
  RAW_SUBDIR: ClassVar[str]
  CLASS_NAMES: ClassVar[tuple[str, ...]]
  DESCRIPTION: ClassVar[str]
  HOMEPAGE: ClassVar[str]
  # TFDS 4.9.10 computes `code_path` via a lazy `importlib_resources` import that
  # fails when that backport is absent; this is the value its fallback returns.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=self.IMAGE_SHAPE, dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=list(self.CLASS_NAMES)),
        }),
        supervised_keys=("image", "label"),
        homepage=self.HOMEPAGE,
        disable_shuffling=True,  # keep the order the reader gives
    )

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for i in range(images.shape[0]):
      yield i, {"image": images[i].reshape(self.IMAGE_SHAPE), "label": int(labels[i])}


class _IdxBuilder(_ArrayBuilder, skip_registration=True):
  """IDX files in `manual_dir` -> array_record examples in the original file order."""

  RELEASE_NOTES = {"1.0.0": "Raw IDX files -> uint8 image Tensor(28, 28, 1) as raw bytes + label; original order."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the four original IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
      "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in one folder and pass it as manual_dir.")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # Read and validate every split before TFDS starts writing anything.
    arrays = {split: read_raw_split(dl_manager.manual_dir, prefix, len(self.CLASS_NAMES))
              for split, prefix in SPLIT_STEMS.items()}
    return {split: self._generate_examples(images, labels) for split, (images, labels) in arrays.items()}


class GenJaxMnist(_IdxBuilder):
  """MNIST (LeCun, Cortes, Burges): 60k train + 10k test 28x28 grey digits."""
  name = "gen_jax_mnist"
  RAW_SUBDIR = "mnist"
  CLASS_NAMES = tuple(str(i) for i in range(10))
  DESCRIPTION = "MNIST handwritten digits, built by gen_jax from the original IDX files."
  HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"


class GenJaxFashionMnist(_IdxBuilder):
  """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 60k train + 10k test 28x28 grey clothes."""
  name = "gen_jax_fashion_mnist"
  RAW_SUBDIR = "fashion_mnist"
  CLASS_NAMES = ("t-shirt_top", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle_boot")
  DESCRIPTION = "Fashion-MNIST article images, built by gen_jax from the original IDX files."
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"


class GenJaxCifar10(_ArrayBuilder):
  """CIFAR-10 (Krizhevsky 2009): 50k train + 10k test 32x32 colour images; one builder config per source file
  (binary | python | jpeg), so a cache built from the lossy JPEG copy is never taken for the original pixels."""
  name = "gen_jax_cifar10"
  IMAGE_SHAPE = cifar10.IMAGE_SHAPE
  CLASS_NAMES = cifar10.CLASS_NAMES
  DESCRIPTION = "CIFAR-10, built by gen_jax from a local copy of the original release or of a JPEG re-encoding."
  HOMEPAGE = cifar10.HOMEPAGE
  RELEASE_NOTES = {"1.0.0": "uint8 image Tensor(32, 32, 3) as raw bytes + label; order: see gen_jax/data/cifar10.py."}
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=k.key, description=f"from the {k.description}")
                     for k in cifar10.KINDS]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put cifar-10-binary.tar.gz or cifar-10-python.tar.gz (builder configs 'binary', 'python') or "
      "cifar10_jpeg.tar.gz ('jpeg') in one folder and pass it as manual_dir.")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    source = cifar10.source_in_folder(cifar10.KIND_BY_KEY[self.builder_config.name], dl_manager.manual_dir)
    arrays = cifar10.read_source(source)
    return {split: self._generate_examples(images, labels) for split, (images, labels) in arrays.items()}


BUILDERS: dict[str, type[_ArrayBuilder]] = {"mnist": GenJaxMnist, "fashion_mnist": GenJaxFashionMnist,
                                            "cifar10": GenJaxCifar10}


def get_builder(name: str, tfds_dir: str | os.PathLike | None = None, config: str | None = None) -> _ArrayBuilder:
  """The builder for `name` ('mnist' | 'fashion_mnist' | 'cifar10' with `config` 'binary' | 'python' | 'jpeg')
  under `tfds_dir` (None: $TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  if name not in BUILDERS:
    raise DatasetError(f"No TFDS builder for {name!r}; known: {sorted(BUILDERS)}.")
  kwargs = {} if config is None else {"config": config}
  return BUILDERS[name](data_dir=None if tfds_dir is None else os.fspath(tfds_dir), file_format="array_record",
                        **kwargs)


def is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  """Whether the prepared files already exist (a load then reuses them)."""
  return (pathlib.Path(os.fspath(builder.data_path)) / "dataset_info.json").is_file()


def prepare(builder: tfds.core.DatasetBuilder, raw_dir: str | os.PathLike) -> None:
  """Builds the array_record files from the raw files in `raw_dir` (no network)."""
  raw_dir = pathlib.Path(raw_dir)
  if isinstance(builder, _IdxBuilder):
    for split, prefix in SPLIT_STEMS.items():  # fail early, with our message, before TFDS
      read_raw_split(raw_dir, prefix, len(builder.CLASS_NAMES))
    how_long = "a few seconds"
  else:
    how_long = "about a minute for the JPEG copy" if builder.builder_config.name == "jpeg" else "seconds"
  t0 = time.perf_counter()
  print(f"Preparing {builder.name} once from {raw_dir} into {builder.data_path} ({how_long})...", flush=True)
  tfds.disable_progress_bar()
  try:
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(raw_dir), try_download_gcs=False))
  except FileExistsError:
    # Another process (a second host, a parallel test worker) finished preparing the same files first;
    # its result is identical, so use it.
    if not is_prepared(builder):
      raise
    for leftover in pathlib.Path(os.fspath(builder.data_path)).parent.glob("incomplete.*"):
      shutil.rmtree(leftover, ignore_errors=True)
  log.info("Prepared %s from %s in %.1fs", builder.data_path, raw_dir, time.perf_counter() - t0)


SOURCE_RECORD = "gen_jax_source.json"   # beside TFDS's dataset_info.json: which source file the cache came from


def read_source_record(builder: tfds.core.DatasetBuilder) -> dict | None:
  """The {'sha256', 'source'} written by `write_source_record` when the cache was built; None for a cache built
  before such records existed (or with the record missing or unreadable)."""
  path = pathlib.Path(os.fspath(builder.data_path)) / SOURCE_RECORD
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def write_source_record(builder: tfds.core.DatasetBuilder, sha256: str, source: str) -> None:
  """Records (atomically) the fingerprint of the source a prepared cache was built from."""
  write_json_atomic(pathlib.Path(os.fspath(builder.data_path)) / SOURCE_RECORD, {"sha256": sha256, "source": source},
                    indent=2, sort_keys=True)


def remove_prepared(builder: tfds.core.DatasetBuilder) -> None:
  """Deletes a prepared cache (derived files only: the version folder under the TFDS dir), to rebuild it."""
  shutil.rmtree(os.fspath(builder.data_path), ignore_errors=True)


def _decode_records(records: list[bytes], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """Fast decode of raw tf.Example records written by the builders above (images of `shape`)."""
  feats = [tf_example_pb2.Example.FromString(r).features.feature for r in records]
  images = np.frombuffer(b"".join([f["image"].bytes_list.value[0] for f in feats]), dtype=np.uint8)
  labels = np.array([f["label"].int64_list.value[0] for f in feats], dtype=np.int32)
  return images.reshape((len(records),) + tuple(shape)), labels


def _decode_with_tfds(source, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
  """TFDS's own (slower) decoding of `keys` from an `as_data_source()` split."""
  examples = source.__getitems__(keys)
  return (np.stack([e["image"] for e in examples]).astype(np.uint8),
          np.array([e["label"] for e in examples], dtype=np.int32))


def read_split(builder: tfds.core.DatasetBuilder, split: str, num: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The first `num` (all if None) examples of `split` as uint8 [n, H, W, C] images and int32 [n] labels.

  Reads raw records in batches through `as_data_source(deserialize_method=RAW_BYTES)`
  and decodes them with the tf.Example proto (about 3x faster than TFDS's
  per-example decoding); the first and last examples are checked against TFDS's
  own decoder, and on any mismatch the whole split is decoded by TFDS instead.
  """
  fix = f"Fix: delete {builder.data_path} and load again to rebuild it from the raw files."
  shape = tuple(getattr(builder, "IMAGE_SHAPE", IMAGE_SHAPE))
  try:
    total = builder.info.splits[split].num_examples
    n = total if num is None else min(int(num), total)
    raw = builder.as_data_source(split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    decoded = builder.as_data_source(split)
    images = np.empty((n,) + shape, dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    try:
      for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop], labels[start:stop] = _decode_records(raw.__getitems__(list(range(start, stop))), shape)
      probe = sorted({0, n - 1}) if n else []
      ref_images, ref_labels = _decode_with_tfds(decoded, probe) if probe else (images, labels)
      if probe and not (np.array_equal(ref_images, images[probe]) and np.array_equal(ref_labels, labels[probe])):
        raise ValueError("fast decoding disagrees with TFDS's decoder")
    except (KeyError, IndexError, ValueError, AttributeError) as e:
      log.warning("Fast decoding of %s/%s failed (%s); decoding with TFDS instead.", builder.name, split, e)
      for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop], labels[start:stop] = _decode_with_tfds(decoded, list(range(start, stop)))
  except DatasetError:
    raise
  except Exception as e:  # corrupt / partly deleted prepared files
    raise DatasetError(f"Cannot read prepared TFDS split {builder.name}/{split} at {builder.data_path}: "
                       f"{type(e).__name__}: {e}. {fix}") from e
  return images, labels
