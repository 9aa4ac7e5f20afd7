"""Image grids as PNG (Pillow): samples, reconstructions, interpolations."""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image


def make_grid(images, ncol: int = 8, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
  """[N, H, W, C] floats in [0, 1] -> one uint8 image [rows*(H+pad)+pad, ..., C] (C is 1 or 3)."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  if images.ndim != 4:
    raise ValueError(f"make_grid expects [N, H, W, C] images, got shape {images.shape}")
  n, h, w, c = images.shape
  ncol = max(1, min(ncol, n))
  nrow = -(-n // ncol)
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.float32)
  for i in range(n):
    r, col = divmod(i, ncol)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    grid[y:y + h, x:x + w] = images[i]
  return np.round(grid * 255.0).astype(np.uint8)


def render_scatter(points, centers=None, size_inches: float = 4.0, lim: float | None = None) -> np.ndarray:
  """2-D samples (and the true mode centres, if given) as a uint8 RGB image [H, W, 3]."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  points = np.asarray(points, np.float32)
  fig, ax = plt.subplots(figsize=(size_inches, size_inches), dpi=100)
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue", label="samples")
  if centers is not None:
    centers = np.asarray(centers)
    ax.scatter(centers[:, 0], centers[:, 1], s=30, marker="x", color="tab:red", label="modes")
    lim = lim or float(np.abs(centers).max()) * 1.5
  if lim:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  ax.legend(loc="upper right", fontsize=7)
  fig.tight_layout()
  fig.canvas.draw()
  image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return image


def save_image(image: np.ndarray, path: str | pathlib.Path) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)
  return path
