"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

The text goes to a temporary file in the same folder (same file system, so the rename is atomic), which is
flushed and fsync'ed, then renamed over the target with os.replace, and the folder is fsync'ed so that the
rename itself survives a power cut. On any failure (a full disk, a quota) the temporary file is removed and the
old file is left as it was.
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any

_TMP_PREFIX = ".tmp-"


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  """Writes `data` to `path` atomically (creating the parent folder); returns the path."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}"
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  try:
    try:
      view = memoryview(data)
      while view:
        written = os.write(fd, view)
        view = view[written:]
      os.fsync(fd)
    finally:
      os.close(fd)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
  fsync_dir(path.parent)
  return path


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> pathlib.Path:
  return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps_kwargs) -> pathlib.Path:
  """json.dumps(obj, **dumps_kwargs) written atomically (serialized first: a value that cannot be serialized
  leaves the old file untouched)."""
  return write_text_atomic(path, json.dumps(obj, **dumps_kwargs))


def fsync_dir(folder: str | os.PathLike) -> None:
  """Makes a rename or a new file in `folder` durable (a no-op where folders cannot be opened)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)
