"""Training logs: JSON lines (`metrics.jsonl`) and TensorBoard event files, without TensorFlow.

TensorBoard files are written with tensorboardX (pure Python + protobuf).
Only process 0 writes in a multi-host run.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys
from typing import Mapping

import numpy as np

from gen_jax.storage.atomic import write_text_atomic


def _summary_writer_class():
  """tensorboardX's writer module runs `import torch` only so that it can accept torch tensors; where PyTorch
  is installed that import costs ~2 s at every train.py start (tensorboardX alone: ~0.15 s). Unless the
  process already has torch, hide it for the duration of the import; torch stays importable afterwards."""
  if "torch" in sys.modules or "tensorboardX" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX handles
  try:
    from tensorboardX import SummaryWriter
  finally:
    if "torch" in sys.modules and sys.modules["torch"] is None:
      del sys.modules["torch"]
  return SummaryWriter


class MetricsLog:
  def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.enabled = enabled
    self.path = self.workdir / "metrics.jsonl"
    self._tb = None
    if enabled:
      self._tb = _summary_writer_class()(logdir=str(self.workdir / "tensorboard"), flush_secs=30)

  def write(self, step: int, metrics: Mapping[str, float], split: str = "train") -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split}
    row.update({k: _jsonable(v) for k, v in metrics.items()})
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    for key, value in metrics.items():
      if isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(float(value)):
        self._tb.add_scalar(f"{split}/{key}", float(value), int(step))

  def write_images(self, step: int, grids: Mapping[str, np.ndarray]) -> None:
    """`grids`: name -> uint8 image [H, W, C] (already laid out)."""
    if not self.enabled:
      return
    for name, grid in grids.items():
      self._tb.add_image(f"images/{name}", grid, int(step), dataformats="HWC")

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def drop_rows_after(path: str | pathlib.Path, step: int) -> int:
  """Removes the rows of `path` logged after `step` (a resume from `step` logs them again); returns how many.
  The file is rewritten atomically; a torn last line (a kill mid-write) is dropped too."""
  path = pathlib.Path(path)
  if not path.is_file():
    return 0
  kept, dropped = [], 0
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    try:
      row = json.loads(line)
      keep = int(row.get("step", 0)) <= step
    except (ValueError, TypeError, AttributeError):
      keep = False
    if keep:
      kept.append(line)
    else:
      dropped += 1
  if dropped:
    write_text_atomic(path, "".join(line + "\n" for line in kept))
  return dropped


def last_step(path: str | pathlib.Path) -> int:
  """The highest step logged in `path` (0 when there is no file or no readable row)."""
  path = pathlib.Path(path)
  if not path.is_file():
    return 0
  best = 0
  with open(path) as f:
    for line in f:
      try:
        best = max(best, int(json.loads(line).get("step", 0)))
      except (ValueError, TypeError, AttributeError):
        continue
  return best


class LossWatch:
  """Warns once per metric when a finite loss grows by `factor` over its first logged value (a diverging run
  that never reaches NaN, e.g. Adam at a huge learning rate). Fed the metrics already fetched at logging steps,
  so it adds no host sync."""

  def __init__(self, factor: float = 1e4, floor: float = 1e-3):
    self.factor, self.floor = factor, floor
    self.first: dict[str, float] = {}
    self.warned: set[str] = set()

  def check(self, step: int, metrics: Mapping[str, float]) -> list[str]:
    lines = []
    for key, value in metrics.items():
      if not (key == "loss" or key.endswith("_loss")) or not math.isfinite(value):
        continue
      first = self.first.setdefault(key, value)
      if key not in self.warned and abs(value) > self.factor * max(abs(first), self.floor):
        self.warned.add(key)
        lines.append(f"WARNING: {key} is {value:.4g} at step {step}, {abs(value) / max(abs(first), self.floor):.2g}x "
                     f"its first logged value ({first:.4g}): training is diverging. Try a lower "
                     "config.optimizer.learning_rate or config.optimizer.grad_clip_norm=1.0.")
    return lines


def has_row(path: str | pathlib.Path, step: int, split: str = "train") -> bool:
  """Whether metrics.jsonl at `path` (absent: no) holds a row of `split` at `step`."""
  if not pathlib.Path(path).is_file():
    return False
  return any(r.get("step") == step and r.get("split", "train") == split for r in read_metrics(path))


def read_metrics(path: str | pathlib.Path) -> list[dict]:
  """All rows of a metrics.jsonl file (for reports and tests)."""
  rows = []
  with open(path) as f:
    lines = [line.strip() for line in f if line.strip()]
  for i, line in enumerate(lines):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      if i != len(lines) - 1:   # only the last line may be torn (a process killed mid-append)
        raise
  return rows


def _jsonable(v):
  if isinstance(v, (np.floating, float)):
    v = float(v)
    return v if math.isfinite(v) else str(v)
  if isinstance(v, (np.integer, int)):
    return int(v)
  if isinstance(v, np.ndarray) and v.size == 1:
    return _jsonable(v.item())
  return v
