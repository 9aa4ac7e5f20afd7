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


def read_metrics(path: str | pathlib.Path) -> list[dict]:
  """All rows of a metrics.jsonl file (for reports and tests)."""
  rows = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        rows.append(json.loads(line))
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
