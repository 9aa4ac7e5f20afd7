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


def save_grid(images, path: str | pathlib.Path, ncol: int = 8, scale: int = 2) -> pathlib.Path:
  """Writes a PNG grid, enlarged `scale` times with nearest neighbour so small digits stay crisp."""
  grid = make_grid(images, ncol)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  img.save(path)
  return path
