"""`load_dataset(data_cfg)`: dataset name + config -> in-memory `Dataset`."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import pathlib
import time
from typing import Any

import numpy as np

from gen_jax.data import synthetic
from gen_jax.data import idx
from gen_jax.data.dataset import ArraySplit, Dataset
from gen_jax.errors import ConfigError, DatasetError

DATASET_NAMES = ("mnist", "fashion_mnist", "binarized_mnist", "cifar10", "image_folder", "npz", "ring8", "grid25",
                 "stacked_mnist")
RAW_SUBDIRS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "binarized_mnist": "mnist"}
BINARIZATIONS = ("dynamic", "fixed")
ENV_DATA_DIR = "GEN_JAX_DATA_DIR"
HOME_DATA_DIR = "~/gen_jax_data"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
_RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_SOURCES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of http://yann.lecun.com/exdb/mnist/; "
             "TFDS uses https://storage.googleapis.com/cvdf-datasets/mnist/)",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
                     "(see https://github.com/zalandoresearch/fashion-mnist)",
}

log = logging.getLogger(__name__)


def unknown_name_message(name: Any) -> str:
  """The error text for a `data.name` that is not one of DATASET_NAMES (also used by config validation)."""
  close = difflib.get_close_matches(str(name), DATASET_NAMES, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  return f"Unknown dataset name {name!r}.{hint} Fix: set --config.data.name to one of {', '.join(DATASET_NAMES)}."


def raw_dir_candidates(data_dir: str | os.PathLike | None) -> list[tuple[str, pathlib.Path | None]]:
  """The places searched for raw IDX folders, in order, as (description, path or None if unset)."""
  env = os.environ.get(ENV_DATA_DIR)
  return [
      ("config data.data_dir", pathlib.Path(data_dir).expanduser() if data_dir else None),
      (f"${ENV_DATA_DIR}", pathlib.Path(env).expanduser() if env else None),
      (HOME_DATA_DIR, pathlib.Path(HOME_DATA_DIR).expanduser()),
      ("<repo root>/../shared/data", SHARED_DATA_DIR),
  ]


def check_data_dir(data_dir: str | os.PathLike | None) -> None:
  """An explicit `data.data_dir` must be an existing folder (it is the only place searched for raw files)."""
  if not data_dir:
    return
  path = pathlib.Path(data_dir).expanduser()
  if path.is_dir():
    return
  what = "is a file, not a folder" if path.exists() else "does not exist"
  raise DatasetError(
      f"config.data.data_dir={os.fspath(data_dir)!r}: {path} {what}. When set, data.data_dir is the only place "
      f"searched for the raw files, so a wrong path is an error, not ignored. Fix: pass the folder that "
      f"holds mnist/ and fashion_mnist/, e.g. --config.data.data_dir={HOME_DATA_DIR}, or leave it empty "
      f"(--config.data.data_dir=) to search ${ENV_DATA_DIR}, {HOME_DATA_DIR} and <repo root>/../shared/data.")


def _missing_raw_files(folder: pathlib.Path) -> list[str]:
  return [stem + ".gz" for stem in _RAW_FILES if idx.find_idx_file(folder, stem) is None]


def find_raw_dir(subdir: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The first `<candidate>/<subdir>` that holds all four IDX files, else DatasetError listing every place searched."""
  searched = []
  for desc, base in raw_dir_candidates(data_dir):
    if base is None:
      searched.append(f"  - {desc}: not set")
      continue
    folder = base / subdir
    if not folder.is_dir():
      searched.append(f"  - {desc}: {folder} (no such folder)")
      if data_dir:
        break
      continue
    missing = _missing_raw_files(folder)
    if not missing:
      return folder
    searched.append(f"  - {desc}: {folder} (missing {', '.join(missing)})")
    if data_dir:
      break  # an explicit data.data_dir is the only place looked at: no silent fallback
  raise DatasetError(
      f"Raw {subdir} IDX files not found. Searched, in order:\n" + "\n".join(searched) + "\n"
      f"Fix: download the four files {', '.join(s + '.gz' for s in _RAW_FILES)} from "
      f"{_SOURCES.get(subdir, 'the dataset website')}, put them under <dir>/{subdir}/ and pass "
      f"--config.data.data_dir=<dir> or set {ENV_DATA_DIR}=<dir> (or use <dir>={HOME_DATA_DIR}). "
      "Check them with the SHA256SUMS published alongside (TFDS registers the same checksums).")


def binarize_fixed(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """One Bernoulli(pixel/255) draw per pixel, as uint8 {0, 255}.

  u ~ Uniform{0..254} and `u < pixel` has probability exactly pixel/255. The
  draws are sequential, so binarizing a prefix of the images gives the prefix
  of binarizing all of them.
  """
  u = rng.integers(0, 255, size=images.shape, dtype=np.uint8)
  return np.where(u < images, np.uint8(255), np.uint8(0))


def _count(data_cfg: Any, key: str) -> int | None:
  n = getattr(data_cfg, key, None)
  if n is None or (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n == 0):
    return None  # 0 = all, as in configs/default.py
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
    raise DatasetError(f"data.{key} must be a positive int, or 0/None for all; found {n!r}. "
                       f"Fix: e.g. --config.data.{key}=1000.")
  return int(n)


def _head(split: ArraySplit, n: int | None) -> ArraySplit:
  """The first n examples, copied so that the full arrays can be freed."""
  if n is None or n >= len(split):
    return split
  labels = None if split.labels is None else split.labels[:n].copy()
  return ArraySplit(split.images[:n].copy(), labels)


def _classes(data_cfg: Any) -> tuple[int, ...]:
  """`data_cfg.classes` as a sorted tuple of distinct ints; () (or unset/None) = all classes."""
  raw = getattr(data_cfg, "classes", None)
  if raw is None:
    return ()
  if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
    raw = (raw,)
  if not isinstance(raw, (tuple, list)) or any(
      isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in raw):
    raise ConfigError(f"config.data.classes must be a tuple of class ids (ints), or () for all; found {raw!r}. "
                      "Fix: e.g. --config.data.classes='(3,)'.")
  return tuple(sorted({int(c) for c in raw}))


def _check_class_range(classes: tuple[int, ...], num_classes: int, name: str) -> None:
  bad = [c for c in classes if not 0 <= c < num_classes]
  if bad:
    raise ConfigError(f"config.data.classes={classes}: class(es) {bad} are outside the valid range "
                      f"[0, {num_classes}) of {name!r}. Fix: use ids 0..{num_classes - 1}.")


def _restrict_classes(dataset: Dataset, classes: tuple[int, ...], num_train: int | None) -> Dataset:
  """Keeps the training examples whose label is in `classes` (then the first `num_train` of them); test stays whole."""
  labels = dataset.train.labels
  if labels is None or dataset.num_classes is None:
    raise DatasetError(f"config.data.classes={classes} needs a labelled dataset, but {dataset.name!r} has no labels. "
                       "Fix: set --config.data.classes='()' (all), or give the images labels (one sub-folder per "
                       "class for image_folder, a 'labels' array for npz).")
  _check_class_range(classes, dataset.num_classes, dataset.name)
  keep = np.flatnonzero(np.isin(labels, np.asarray(classes, np.int32)))
  if keep.size == 0:
    raise DatasetError(f"config.data.classes={classes} leaves no training example of {dataset.name!r} (valid range "
                       f"[0, {dataset.num_classes}), but none of these labels occurs in the train split). "
                       "Fix: pick classes that occur in the train split.")
  keep = keep if num_train is None else keep[:num_train]
  train = ArraySplit(dataset.train.images[keep], labels[keep])
  which = "all" if num_train is None else "the first"
  source = (f"{dataset.source}; train classes {classes}: {which} {len(train)} train examples of these classes "
            f"(data.num_train counts after this filter); test split whole")
  return dataclasses.replace(dataset, train=train, source=source)


def _read_train(builder, num_train: int | None, classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
  """The first `num_train` train examples, or with `classes` a prefix holding num_train of those classes.

  With a class filter the prefix read grows (x4) until it holds `num_train` examples of the classes or is the
  whole split, so a small filtered run does not decode all 60k images; the examples kept are the same either way.
  """
  from gen_jax.data import tfds_builders

  if not classes or num_train is None:
    return tfds_builders.read_split(builder, "train", None if classes else num_train)
  total = builder.info.splits["train"].num_examples
  n = min(total, max(1024, 2 * num_train * 10 // len(classes)))  # MNIST-like: ~1/10 of the examples per class
  while True:
    images, labels = tfds_builders.read_split(builder, "train", n)
    if n >= total or int(np.isin(labels, classes).sum()) >= num_train:
      return images, labels
    n = min(total, 4 * n)


def _load_idx_dataset(name: str, data_cfg: Any, num_train: int | None, num_test: int | None,
                      classes: tuple[int, ...] = ()) -> Dataset:
  """MNIST / Fashion-MNIST / binarized MNIST via the project TFDS builders (`classes`: see `_read_train`)."""
  from gen_jax.data import tfds_builders  # lazy: TFDS is only needed here

  subdir = RAW_SUBDIRS[name]
  tfds_dir = getattr(data_cfg, "tfds_dir", None) or None  # '' = TFDS default
  data_dir = getattr(data_cfg, "data_dir", None) or None
  check_data_dir(data_dir)   # even when a prepared TFDS copy would be reused: a wrong path is not ignored
  builder = tfds_builders.get_builder(subdir, tfds_dir)
  t0 = time.perf_counter()
  if tfds_builders.is_prepared(builder):
    how = "reused"
    if data_dir:   # an explicit data_dir is the only place looked at: it must hold the files, prepared copy or not
      raw_desc = str(find_raw_dir(subdir, data_dir))
    else:
      try:
        raw_desc = str(find_raw_dir(subdir, data_dir))
      except DatasetError:
        raw_desc = "raw files not present now"
  else:
    raw_dir = find_raw_dir(subdir, data_dir)
    tfds_builders.prepare(builder, raw_dir)
    how, raw_desc = "built", str(raw_dir)
  t1 = time.perf_counter()
  train = ArraySplit(*_read_train(builder, num_train, classes))
  test = ArraySplit(*tfds_builders.read_split(builder, "test", num_test))
  log.info("%s: TFDS %s in %.1fs, read in %.1fs", name, how, t1 - t0, time.perf_counter() - t1)
  source = (f"{subdir} IDX files ({raw_desc}) -> TFDS {builder.name} {builder.version} array_record at "
            f"{builder.data_path} ({how})")

  binarization = None
  if name == "binarized_mnist":
    binarization = getattr(data_cfg, "binarization", None) or "dynamic"
    if binarization not in BINARIZATIONS:
      raise DatasetError(
          f"data.binarization must be one of {BINARIZATIONS} for binarized_mnist; found {binarization!r}. "
          "Fix: 'dynamic' (fresh Bernoulli draw per batch, the published-NLL protocol) or 'fixed'.")
    if binarization == "fixed":
      seed = int(getattr(data_cfg, "seed", 0) or 0)
      train_rng, test_rng = np.random.default_rng(seed).spawn(2)
      train = ArraySplit(binarize_fixed(train.images, train_rng), train.labels)
      test = ArraySplit(binarize_fixed(test.images, test_rng), test.labels)
      source += f"; fixed binarization: one Bernoulli(pixel/255) draw, np.random.default_rng({seed}).spawn(2)"
    else:
      source += "; dynamic binarization: Bernoulli(pixel/255) redrawn every batch on device"
  return Dataset(name=name, train=train, test=test, num_classes=10, binarization=binarization, source=source,
                 class_names=tuple(builder.CLASS_NAMES))


def _load_cifar10(data_cfg: Any, num_train: int | None, num_test: int | None, classes: tuple[int, ...]) -> Dataset:
  """CIFAR-10 via the project TFDS builder, from the first source `cifar10.find_source` finds (originals before
  the JPEG copy); with no source present, a prepared cache is reused (originals first) and says so."""
  from gen_jax.data import cifar10, tfds_builders  # lazy: TFDS is only needed here

  tfds_dir = getattr(data_cfg, "tfds_dir", None) or None
  data_dir = getattr(data_cfg, "data_dir", None) or None
  check_data_dir(data_dir)
  t0 = time.perf_counter()
  try:
    source = cifar10.find_source(raw_dir_candidates(data_dir), explicit=bool(data_dir))
  except DatasetError:
    prepared = [b for b in (tfds_builders.get_builder("cifar10", tfds_dir, k.key) for k in cifar10.KINDS)
                if tfds_builders.is_prepared(b)]
    if not prepared:
      raise
    builder, how = prepared[0], "reused"
    kind = cifar10.KIND_BY_KEY[builder.builder_config.name]
    desc = f"{kind.description}, raw file not present now"
  else:
    kind = source.kind
    builder = tfds_builders.get_builder("cifar10", tfds_dir, kind.key)
    sha = cifar10.fingerprint(source)
    how = "reused" if tfds_builders.is_prepared(builder) else "built"
    if how == "reused":
      record = tfds_builders.read_source_record(builder)
      if record is None:  # a cache from before source records: adopt it for this source, and say so in the log
        log.warning("cifar10: the cache %s has no source record; recording %s (sha256 %s) as its source",
                    builder.data_path, source.path, sha[:12])
        tfds_builders.write_source_record(builder, sha, str(source.path))
      elif record["sha256"] != sha:
        log.warning("cifar10: %s changed since the cache %s was built from %s (sha256 %s -> %s); rebuilding",
                    source.path, builder.data_path, record.get("source"), record["sha256"][:12], sha[:12])
        tfds_builders.remove_prepared(builder)
        builder = tfds_builders.get_builder("cifar10", tfds_dir, kind.key)  # one that did not read the old info
        how = "rebuilt: the source changed"
    if how != "reused":
      tfds_builders.prepare(builder, source.path.parent)
      tfds_builders.write_source_record(builder, sha, str(source.path))
    desc = source.description
  t1 = time.perf_counter()
  train = ArraySplit(*_read_train(builder, num_train, classes))
  test = ArraySplit(*tfds_builders.read_split(builder, "test", num_test))
  log.info("cifar10: TFDS %s in %.1fs, read in %.1fs", how, t1 - t0, time.perf_counter() - t1)
  note = cifar10.count_note({s: int(builder.info.splits[s].num_examples) for s in cifar10.SPLITS})
  if note:
    log.warning("cifar10: %s holds %s", desc, note)
    desc = f"{desc}; {note}"
  source_text = (f"CIFAR-10 {desc} -> TFDS {builder.name}/{kind.key} {builder.version} array_record at "
                 f"{builder.data_path} ({how})")
  return Dataset(name="cifar10", train=train, test=test, num_classes=10, binarization=None, source=source_text,
                 class_names=cifar10.CLASS_NAMES)


def _load_user_dataset(name: str, data_cfg: Any, num_train: int | None, num_test: int | None) -> Dataset:
  """A folder of images or an .npz file at `data_cfg.path`."""
  from gen_jax.data import image_folder

  path = getattr(data_cfg, "path", None)
  if not path:
    what = "a folder of PNG/JPEG images" if name == "image_folder" else "an .npz file"
    raise DatasetError(f"data.name={name!r} needs data.path; it is not set. Fix: --config.data.path=<{what}>.")
  p = pathlib.Path(path).expanduser()
  if name == "image_folder" and p.is_file():
    raise DatasetError(f"{p} is a file, not a folder. Fix: for an .npz file use --config.data.name=npz.")
  if name == "npz" and p.is_dir():
    raise DatasetError(f"{p} is a folder, not an .npz file. Fix: for a folder of images use --config.data.name=image_folder.")
  test_fraction = getattr(data_cfg, "test_fraction", None)
  test_fraction = 0.1 if test_fraction is None else float(test_fraction)
  seed = int(getattr(data_cfg, "seed", 0) or 0)
  if name == "image_folder":   # decodes only the examples kept
    train, test, num_classes, source = image_folder.load_image_folder(
        p, test_fraction=test_fraction, seed=seed, num_train=num_train, num_test=num_test)
  else:
    train, test, num_classes, source = image_folder.load_npz(p, test_fraction=test_fraction, seed=seed)
  return Dataset(name=name, train=_head(train, num_train), test=_head(test, num_test),
                 num_classes=num_classes, binarization=None, source=source)


def load_dataset(data_cfg: Any) -> Dataset:
  """Loads the dataset that `data_cfg` (a ConfigDict or any object with attributes) names.

  Keys: name (one of DATASET_NAMES); data_dir, tfds_dir (MNIST-like names and cifar10);
  path, test_fraction (image_folder / npz); binarization ('dynamic' | 'fixed';
  read for binarized_mnist only, ignored otherwise); num_train / num_test (keep
  the first N; None or 0 = all); seed (fixed binarization and the test hold-out; default 0);
  classes (keep only training examples with these labels, for the one-class anomaly protocol; num_train then
  counts the kept examples; the test split stays whole; () = all).
  """
  name = getattr(data_cfg, "name", None)
  if name not in DATASET_NAMES:
    raise DatasetError(unknown_name_message(name))
  num_train, num_test = _count(data_cfg, "num_train"), _count(data_cfg, "num_test")
  classes = _classes(data_cfg)
  if classes and (name in synthetic.MIXTURE_NAMES or name == "stacked_mnist"):
    raise ConfigError(f"config.data.classes={classes} is not supported for data.name={name!r} (its examples are "
                      "drawn on device, not stored with labels). Fix: set --config.data.classes='()', or use a "
                      "labelled image dataset such as mnist or fashion_mnist.")
  if name in synthetic.MIXTURE_NAMES:
    return synthetic.load_mixture(name)
  if name == "stacked_mnist":
    return synthetic.StackedMnist(_load_idx_dataset("mnist", data_cfg, num_train, num_test))
  # With a class filter, num_train counts the kept examples: the first num_train of the chosen classes.
  if name in RAW_SUBDIRS or name == "cifar10":
    _check_class_range(classes, 10, name)  # before reading: these named datasets have 10 classes
    load = _load_cifar10 if name == "cifar10" else functools.partial(_load_idx_dataset, name)
    dataset = load(data_cfg, num_train, num_test, classes)
  else:
    dataset = _load_user_dataset(name, data_cfg, None if classes else num_train, num_test)
  return _restrict_classes(dataset, classes, num_train) if classes else dataset
