"""CIFAR-10 (Krizhevsky 2009) from local files: the original binary or python release, or a JPEG re-encoding.

Searched in the same places as MNIST (`registry.raw_dir_candidates`), originals before the JPEG copy:
  <dir>/cifar10/cifar-10-binary.tar.gz   (or its extracted cifar-10-batches-bin/)  "original binary"
  <dir>/cifar10/cifar-10-python.tar.gz   (or its extracted cifar-10-batches-py/)   "original python"
  <dir>/cifar10_jpeg/cifar10_jpeg.tar.gz  train|test/<class>/NNNN.jpg               "JPEG re-encoding (lossy)"
The readers here return uint8 [N, 32, 32, 3] images and int32 labels per split; the TFDS builder in
tfds_builders.py stores them once as array_record. Order: the originals keep the release's order (train =
data_batch_1..5); the JPEG files are sorted by (class, file name) and then taken class by class in turn, so the
order never depends on the order of the archive's members and every prefix (data.num_train) is class-balanced.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import os
import pathlib
import pickle
import tarfile

import numpy as np

from gen_jax.errors import DatasetError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
SPLITS = ("train", "test")
NUM_EXAMPLES = {"train": 50_000, "test": 10_000}
_RECORD = 1 + 32 * 32 * 3                         # binary release: label byte + CHW pixels
_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclasses.dataclass(frozen=True)
class SourceKind:
  key: str           # TFDS builder config name
  subdir: str        # folder under a data dir
  names: tuple[str, ...]  # archive, then extracted folder
  description: str   # recorded in Dataset.source and so in every protocol


BINARY = SourceKind("binary", "cifar10", ("cifar-10-binary.tar.gz", "cifar-10-batches-bin"), "original binary")
PYTHON = SourceKind("python", "cifar10", ("cifar-10-python.tar.gz", "cifar-10-batches-py"), "original python")
JPEG = SourceKind("jpeg", "cifar10_jpeg", ("cifar10_jpeg.tar.gz",), "JPEG re-encoding (lossy, ~quality 75)")
KINDS = (BINARY, PYTHON, JPEG)                    # search order within the originals-first passes
KIND_BY_KEY = {k.key: k for k in KINDS}


@dataclasses.dataclass(frozen=True)
class Source:
  kind: SourceKind
  path: pathlib.Path  # the archive or extracted folder

  @property
  def description(self) -> str:
    return f"{self.kind.description}, {self.path}"


def fingerprint(source: Source) -> str:
  """sha256 of the source's bytes (an archive; or an extracted folder's files, names included, in sorted order):
  the identity of what a prepared cache was built from, so a replaced archive of the same kind is noticed."""
  digest = hashlib.sha256()
  paths = [source.path] if source.path.is_file() else sorted(p for p in source.path.rglob("*") if p.is_file())
  for path in paths:
    if path != source.path:
      digest.update(path.relative_to(source.path).as_posix().encode() + b"\0")
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
  return digest.hexdigest()


def count_note(counts: dict[str, int]) -> str:
  """'' when a split has the release's size, else what it holds (recorded in the protocol's data source)."""
  if all(counts.get(s) == n for s, n in NUM_EXAMPLES.items()):
    return ""
  have = " / ".join(f"{counts.get(s, 0)} {s}" for s in SPLITS)
  full = " / ".join(str(NUM_EXAMPLES[s]) for s in SPLITS)
  return f"{have} images, not the release's {full}"


def find_source(candidates: list[tuple[str, pathlib.Path | None]], explicit: bool) -> Source:
  """The first CIFAR-10 source: originals in every candidate dir first, then the JPEG copy; else a DatasetError
  listing every place searched. `candidates`: (description, base dir or None) as registry.raw_dir_candidates;
  `explicit`: the first candidate is an explicit data.data_dir, the only place searched."""
  bases = candidates[:1] if explicit else candidates
  searched = []
  for passes in ((BINARY, PYTHON), (JPEG,)):
    for desc, base in bases:
      if base is None:
        if passes[0] is BINARY:
          searched.append(f"  - {desc}: not set")
        continue
      for kind in passes:
        for name in kind.names:
          path = base / kind.subdir / name
          if path.exists():
            return Source(kind, path)
          searched.append(f"  - {desc}: {path}")
  raise DatasetError(
      "CIFAR-10 not found. Searched, in order:\n" + "\n".join(searched) + "\n"
      f"Fix: download cifar-10-binary.tar.gz (or cifar-10-python.tar.gz) from {HOMEPAGE} into <dir>/cifar10/ "
      "(or put a JPEG copy at <dir>/cifar10_jpeg/cifar10_jpeg.tar.gz, train|test/<class>/*.jpg) and pass "
      "--config.data.data_dir=<dir> or set GEN_JAX_DATA_DIR=<dir>.")


# --- originals ------------------------------------------------------------------------------------------------

def _members(path: pathlib.Path, stems: tuple[str, ...], suffix: str) -> dict[str, bytes]:
  """{stem: bytes} of the files `stem + suffix` in a .tar.gz (any folder inside) or an extracted folder."""
  wanted = {s + suffix for s in stems}
  found: dict[str, bytes] = {}
  try:
    if path.is_dir():
      for name in wanted:
        if (path / name).is_file():
          found[name] = (path / name).read_bytes()
    else:
      with tarfile.open(path, "r:*") as tar:
        for m in tar:
          base = m.name.rsplit("/", 1)[-1]
          if m.isfile() and base in wanted:
            found[base] = tar.extractfile(m).read()
  except (OSError, tarfile.TarError, EOFError) as e:
    raise DatasetError(f"Cannot read {path}: {type(e).__name__}: {e}. Fix: download it again from {HOMEPAGE}.") \
        from e
  missing = sorted(wanted - set(found))
  if missing:
    raise DatasetError(f"{path} lacks {', '.join(missing)}: not a complete CIFAR-10 release. "
                       f"Fix: download it again from {HOMEPAGE}.")
  return {name[:len(name) - len(suffix)]: data for name, data in found.items()}


def _check(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
  if labels.size and int(labels.max()) >= len(CLASS_NAMES):
    raise DatasetError(f"{where} holds label {int(labels.max())}, expected 0..9. Fix: download it again from {HOMEPAGE}.")
  return np.ascontiguousarray(images, dtype=np.uint8), labels.astype(np.int32)


def _chw_to_hwc(flat: np.ndarray) -> np.ndarray:
  return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def read_binary(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (uint8 [N, 32, 32, 3], int32 [N])} from the binary release (records: 1 label byte + 3072 CHW bytes)."""
  path = pathlib.Path(path)
  files = _members(path, _BATCHES["train"] + _BATCHES["test"], ".bin")
  out = {}
  for split, stems in _BATCHES.items():
    parts = []
    for stem in stems:
      data = files[stem]
      if len(data) % _RECORD or not data:
        raise DatasetError(f"{path}: {stem}.bin is {len(data)} bytes, not a whole number of {_RECORD}-byte records: "
                           f"truncated or not the binary release. Fix: download it again from {HOMEPAGE}.")
      parts.append(np.frombuffer(data, np.uint8).reshape(-1, _RECORD))
    records = np.concatenate(parts)
    out[split] = _check(_chw_to_hwc(records[:, 1:]), records[:, 0], f"{path} ({split})")
  return out


class _ArraysOnly(pickle.Unpickler):
  """Unpickles the python release's dicts of numpy arrays and lists, and nothing else (no arbitrary code)."""
  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
              ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

  def find_class(self, module, name):
    if (module, name) in self._ALLOWED:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")


def read_python(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images, labels)} from the python release (pickled dicts with b'data' [N, 3072] CHW and b'labels')."""
  path = pathlib.Path(path)
  files = _members(path, _BATCHES["train"] + _BATCHES["test"], "")
  out = {}
  for split, stems in _BATCHES.items():
    images, labels = [], []
    for stem in stems:
      try:
        d = _ArraysOnly(io.BytesIO(files[stem]), encoding="bytes").load()
        data = np.asarray(d[b"data"], np.uint8).reshape(-1, 3072)
        lab = np.asarray(d[b"labels"], np.int64).reshape(-1)
      except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as e:
        raise DatasetError(f"{path}: {stem} is not a CIFAR-10 python batch ({type(e).__name__}: {e}). "
                           f"Fix: download it again from {HOMEPAGE}.") from e
      if data.shape[0] != lab.shape[0]:
        raise DatasetError(f"{path}: {stem} holds {data.shape[0]} images but {lab.shape[0]} labels. "
                           f"Fix: download it again from {HOMEPAGE}.")
      images.append(_chw_to_hwc(data))
      labels.append(lab)
    out[split] = _check(np.concatenate(images), np.concatenate(labels), f"{path} ({split})")
  return out


# --- JPEG re-encoding -----------------------------------------------------------------------------------------

def _decode_jpeg(item: tuple[str, bytes]) -> np.ndarray:
  from PIL import Image, UnidentifiedImageError
  name, data = item
  try:
    with Image.open(io.BytesIO(data)) as im:
      x = np.asarray(im.convert("RGB"), np.uint8)
  except (UnidentifiedImageError, OSError, ValueError) as e:
    raise DatasetError(f"Cannot decode {name}: {e}. Fix: re-create the archive or use the original release.") from e
  if x.shape != IMAGE_SHAPE:
    raise DatasetError(f"{name} is {x.shape[1]}x{x.shape[0]}, expected 32x32. Fix: use CIFAR-10's 32x32 images.")
  return x


def jpeg_order(entries: list[tuple[int, str]]) -> list[int]:
  """Indices of (class id, file name) entries in the stored order: sorted by (class, name) within each class,
  then the classes taken in turn (class 0's first file, class 1's first, ..., class 0's second, ...)."""
  per_class: dict[int, list[tuple[str, int]]] = {}
  for i, (cls, name) in enumerate(entries):
    per_class.setdefault(cls, []).append((name, i))
  queues = [sorted(per_class[c]) for c in sorted(per_class)]
  order = []
  for rank in range(max((len(q) for q in queues), default=0)):
    order.extend(q[rank][1] for q in queues if rank < len(q))
  return order


def read_jpeg_tar(path: str | os.PathLike, workers: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images, labels)} from a tar of train|test/<class>/*.jpg (an optional leading folder is allowed);
  the members are read in one pass and decoded on `workers` threads (None: one per CPU; Pillow releases the GIL
  while decoding)."""
  path = pathlib.Path(path)
  items: dict[str, list[tuple[int, str, bytes]]] = {s: [] for s in SPLITS}
  ids = {c: i for i, c in enumerate(CLASS_NAMES)}
  try:
    with tarfile.open(path, "r:*") as tar:
      for m in tar:
        parts = m.name.strip("/").split("/")
        if not m.isfile() or len(parts) < 3 or not parts[-1].lower().endswith((".jpg", ".jpeg")):
          continue
        split, cls, name = parts[-3:]
        if split not in items:
          continue
        if cls not in ids:
          raise DatasetError(f"{path}: {m.name} is in class folder {cls!r}; CIFAR-10's classes are "
                             f"{', '.join(CLASS_NAMES)}. Fix: name the class folders after them.")
        items[split].append((ids[cls], name, tar.extractfile(m).read()))
  except (OSError, tarfile.TarError, EOFError) as e:
    raise DatasetError(f"Cannot read {path}: {type(e).__name__}: {e}. Fix: copy the archive again.") from e
  out = {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
    for split in SPLITS:
      entries = items[split]
      if not entries:
        raise DatasetError(f"{path} holds no {split}/<class>/*.jpg files. Fix: the archive needs train/ and test/ "
                           "folders with one sub-folder per class.")
      order = jpeg_order([(c, n) for c, n, _ in entries])
      named = [(f"{path}:{split}/{CLASS_NAMES[entries[i][0]]}/{entries[i][1]}", entries[i][2]) for i in order]
      images = np.stack(list(pool.map(_decode_jpeg, named, chunksize=256)))
      labels = np.array([entries[i][0] for i in order], np.int32)
      out[split] = (images, labels)
  return out


def read_source(source: Source, workers: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Both splits of `source`, validated."""
  if source.kind is BINARY:
    return read_binary(source.path)
  if source.kind is PYTHON:
    return read_python(source.path)
  return read_jpeg_tar(source.path, workers)


def source_in_folder(kind: SourceKind, folder: str | os.PathLike) -> Source:
  """The `kind` file in `folder` (TFDS's manual_dir: <dir>/<kind.subdir>)."""
  folder = pathlib.Path(folder)
  for name in kind.names:
    if (folder / name).exists():
      return Source(kind, folder / name)
  raise DatasetError(f"No {' or '.join(kind.names)} in {folder}. Fix: put the CIFAR-10 {kind.description} there.")
