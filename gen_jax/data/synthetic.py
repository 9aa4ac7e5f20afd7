"""Datasets for mode-collapse studies: 2-D Gaussian mixtures and Stacked MNIST.

- 'ring8': 8 Gaussians on a circle of radius 2, std 0.02 (Metz et al. 2017, unrolled GANs).
- 'grid25': 25 Gaussians on a 5x5 grid with spacing 2 ({-4,-2,0,2,4}^2), std 0.05
  (Srivastava et al. 2017 VEEGAN; Lin et al. 2018 PacGAN).
  Both are sampled fresh on the device at every step: any number of samples.
- 'stacked_mnist': three MNIST digits drawn independently as the R, G, B channels
  (Metz et al. 2017; Srivastava et al. 2017): 1000 modes, label 100*d_R + 10*d_G + d_B.
  Built on the fly on the device from the MNIST training set.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gen_jax.data.dataset import Dataset

# Ring: radius 2, std 0.02, as in Metz et al. 2017 (unrolled GAN).
RING_STD = 0.02
# Grid: {-4, -2, 0, 2, 4}^2, std 0.05, as in VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).
GRID_STD = 0.05
MIXTURE_NAMES = ("ring8", "grid25")


def ring_centers(num_modes: int = 8, radius: float = 2.0) -> np.ndarray:
  """[M, 2] float32 centres radius * (cos(2 pi k / M), sin(2 pi k / M))."""
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1).astype(np.float32)


def grid_centers(side: int = 5, spacing: float = 2.0) -> np.ndarray:
  """[side^2, 2] float32 centres (k - (side - 1) / 2) * spacing, row-major."""
  coords = (np.arange(side) - (side - 1) / 2) * spacing
  xx, yy = np.meshgrid(coords, coords, indexing="ij")
  return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class MixtureDataset:
  """A 2-D Gaussian mixture with equal weights: `centers` [M, 2], isotropic `std`."""
  name: str
  centers: np.ndarray
  std: float
  num_classes: int | None = None
  binarization: str | None = None

  @property
  def image_shape(self) -> tuple[int, ...]:
    return (2,)

  @property
  def source(self) -> str:
    return f"{self.name}: {len(self.centers)} Gaussians, std {self.std}, sampled on device (synthetic)"


def load_mixture(name: str) -> MixtureDataset:
  if name == "ring8":
    return MixtureDataset(name, ring_centers(), RING_STD)
  if name == "grid25":
    return MixtureDataset(name, grid_centers(), GRID_STD)
  raise ValueError(f"unknown mixture {name!r}; known: {MIXTURE_NAMES}")


@dataclasses.dataclass(frozen=True)
class StackedMnist:
  """Stacked MNIST over an MNIST `Dataset` (grey, uint8 [N,28,28,1])."""
  base: Dataset
  name: str = "stacked_mnist"
  num_classes: int = 1000
  binarization: str | None = None

  @property
  def train(self):
    return self.base.train

  @property
  def test(self):
    return self.base.test

  @property
  def image_shape(self) -> tuple[int, ...]:
    h, w, _ = self.base.image_shape
    return (h, w, 3)

  @property
  def source(self) -> str:
    return f"stacked_mnist: 3 independent MNIST digits as RGB channels, drawn on device from {self.base.source}"
