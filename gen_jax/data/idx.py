"""Reader for the IDX format of the original MNIST / Fashion-MNIST files (.gz or plain).

An IDX file is a big-endian header (magic 0x000008DD: type 0x08 = uint8, DD =
number of dims; then one uint32 per dim) followed by prod(dims) uint8 bytes.
"""
from __future__ import annotations

import gzip
import os
import pathlib
import struct
import zlib

import numpy as np

from gen_jax.errors import DatasetError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dims: N, H, W
LABELS_MAGIC = 0x00000801  # uint8, 1 dim: N
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = ("Fix: re-download the file from the dataset's website and verify it against the published "
        "checksums (e.g. `sha256sum -c SHA256SUMS` in the data folder).")


def find_idx_file(folder: str | os.PathLike, stem: str) -> pathlib.Path | None:
  """`folder/stem.gz` or `folder/stem` (first that exists), else None."""
  folder = pathlib.Path(folder)
  for name in (stem + ".gz", stem):
    if (folder / name).is_file():
      return folder / name
  return None


def _read_bytes(path: pathlib.Path) -> bytes:
  """The file's content, gunzipped if it starts with the gzip magic."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DatasetError(f"Cannot read IDX file {path}: {e}. Fix: check the path and its permissions.") from e
  if raw[:2] != _GZIP_MAGIC:
    return raw
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as e:
    raise DatasetError(
        f"IDX file {path} is a corrupt or truncated gzip file ({type(e).__name__}: {e}). {_FIX}") from e


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
  """Reads a uint8 IDX file and checks its magic number and payload length."""
  path = pathlib.Path(path)
  data = _read_bytes(path)
  ndim = magic & 0xFF
  header_len = 4 + 4 * ndim
  if len(data) >= 4:
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
      kind = {IMAGES_MAGIC: "images (N, H, W)", LABELS_MAGIC: "labels (N)"}.get(magic, "uint8 IDX")
      raise DatasetError(
          f"IDX file {path} has magic number 0x{found:08x}, expected 0x{magic:08x} for {kind}: "
          f"wrong file (images and labels swapped?) or corrupt. {_FIX}")
  if len(data) < header_len:
    raise DatasetError(
        f"IDX file {path} is {len(data)} bytes (after gunzip), shorter than its {header_len}-byte header: "
        f"truncated. {_FIX}")
  dims = struct.unpack(f">{ndim}I", data[4:header_len])
  expected = int(np.prod(dims, dtype=np.int64))
  payload = len(data) - header_len
  if payload != expected:
    what = "truncated" if payload < expected else "has trailing bytes"
    raise DatasetError(
        f"IDX file {path} declares dims {dims} = {expected} bytes of data but holds {payload}: {what}. {_FIX}")
  return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
  """uint8 [N, H, W] from an images IDX file (magic 0x00000803)."""
  return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
  """uint8 [N] from a labels IDX file (magic 0x00000801)."""
  return read_idx(path, LABELS_MAGIC)


def check_counts(images: np.ndarray, labels: np.ndarray, images_path: os.PathLike, labels_path: os.PathLike) -> None:
  """Raises DatasetError unless there is exactly one label per image."""
  if images.shape[0] != labels.shape[0]:
    raise DatasetError(
        f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels; "
        f"they must match (files from different datasets or splits?). {_FIX}")
