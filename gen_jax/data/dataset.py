"""In-memory dataset containers: uint8 NHWC images plus optional int32 labels."""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from gen_jax.errors import DatasetError

BINARIZATIONS = (None, "dynamic", "fixed")


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """One split: `images` uint8 [N, H, W, C] (C = 1 grey or 3 colour), `labels` int32 [N] or None."""
  images: np.ndarray
  labels: np.ndarray | None

  def __post_init__(self):
    x, y = self.images, self.labels
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
      desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
      raise DatasetError(
          f"ArraySplit.images must be a uint8 array [N, H, W, C] with C in (1, 3); found {desc}. "
          "Fix: convert with `np.asarray(x, np.uint8)` and add/trim the channel axis (grey: x[..., None]).")
    if y is None:
      return
    if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.shape != (x.shape[0],):
      desc = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
      raise DatasetError(
          f"ArraySplit.labels must be int32 [{x.shape[0]}] (one per image) or None; found {desc}. "
          "Fix: `labels.astype(np.int32).reshape(-1)` with exactly one label per image.")

  def __len__(self) -> int:
    return int(self.images.shape[0])

  @property
  def num_examples(self) -> int:
    """Number of images in the split."""
    return len(self)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A train/test pair of splits plus how to interpret the pixels.

  `binarization`: None (grey/colour pixels), 'dynamic' (the model input is a
  fresh Bernoulli(pixel/255) draw each batch, done by the on-device sampler) or
  'fixed' (images were binarized once to {0, 255} with a fixed seed).
  `source` says where the data came from and is recorded in run metadata and every evaluation protocol.
  `class_names`: label id -> name where known (named datasets), else None.
  """
  name: str
  train: ArraySplit
  test: ArraySplit
  num_classes: int | None
  binarization: str | None
  source: str
  class_names: tuple[str, ...] | None = None

  def __post_init__(self):
    if self.binarization not in BINARIZATIONS:
      raise DatasetError(
          f"Dataset {self.name!r}: binarization must be one of {BINARIZATIONS}; found {self.binarization!r}. "
          "Fix: use 'dynamic' (published-NLL protocol) or 'fixed'.")
    if self.train.images.shape[1:] != self.test.images.shape[1:]:
      raise DatasetError(
          f"Dataset {self.name!r}: train images are {self.train.images.shape[1:]} but test images are "
          f"{self.test.images.shape[1:]} (H, W, C). Fix: resize/convert both splits to one shape.")
    if (self.train.labels is None) != (self.test.labels is None):
      raise DatasetError(
          f"Dataset {self.name!r}: one split has labels and the other does not. "
          "Fix: give labels for both splits or for neither.")
    if self.num_classes is not None:
      for split_name, split in (("train", self.train), ("test", self.test)):
        if split.labels is not None and split.labels.size and (
            split.labels.min() < 0 or split.labels.max() >= self.num_classes):
          raise DatasetError(
              f"Dataset {self.name!r}: {split_name} labels span [{split.labels.min()}, {split.labels.max()}] "
              f"but num_classes is {self.num_classes}. Fix: labels must be integers in [0, num_classes).")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image."""
    h, w, c = self.train.images.shape[1:]
    return int(h), int(w), int(c)

  def summary_line(self) -> str:
    """One line for the training log: what was loaded (name, examples per split, classes, image shape, source)."""
    h, w, c = self.image_shape
    if self.num_classes is None:
      classes = "no labels"
    elif self.class_names:
      names = ", ".join(self.class_names[:10]) + (", ..." if len(self.class_names) > 10 else "")
      classes = f"{self.num_classes} classes ({names})"
    else:
      classes = f"{self.num_classes} classes"
    binar = f", {self.binarization} binarization" if self.binarization else ""
    return (f"Data: {self.name}: {len(self.train)} train / {len(self.test)} test examples, {classes}, "
            f"images {h}x{w}x{c} ({'colour' if c == 3 else 'grey'}){binar}; source: {self.source}")


def source_kind(text: str) -> str:
  """A dataset-source description without its machine-local parts: for a prepared TFDS dataset its builder, source
  kind and version (e.g. 'TFDS gen_jax_cifar10/jpeg 1.0.0') and what follows ';' (binarization, class filters);
  otherwise the text with paths and parenthesized notes removed. Two numbers measured on data whose
  source kinds differ (the JPEG copy of CIFAR-10 vs the original release) are not comparable."""
  text = str(text)
  head, _, tail = text.partition(";")
  tfds = re.search(r"TFDS \S+ \S+", head)
  if tfds:
    head = tfds.group(0)
  else:
    head = re.sub(r"\([^)]*\)", "", head)
  text = head + (";" + tail if tail else "")
  return re.sub(r"\s+", " ", re.sub(r"(?<![\w.])/[^\s,;)]*", "<path>", text)).strip()
