"""Mode-collapse metrics on 2-D Gaussian mixtures: centres, coverage, quality threshold, KL to uniform."""
import math

import numpy as np
import pytest

from gen_jax.errors import ConfigError
from gen_jax.eval.metrics.modes import (GRID_STD, RING_STD, default_min_count, grid_centers, mixture_mode_stats,
                                ring_centers)


def test_centers():
  ring = ring_centers()
  assert ring.shape == (8, 2) and ring.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0, rtol=1e-6)
  np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(ring[2], [0.0, 2.0], atol=1e-6)
  grid = grid_centers()
  assert grid.shape == (25, 2) and grid.dtype == np.float32
  assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
  assert len({tuple(c) for c in grid.tolist()}) == 25
  np.testing.assert_allclose(grid.mean(0), 0.0, atol=1e-6)
  np.testing.assert_allclose(grid_centers(side=2, spacing=1.0), [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
  assert (RING_STD, GRID_STD) == (0.02, 0.05)


@pytest.mark.parametrize("centers,std", [(ring_centers(), RING_STD), (grid_centers(), GRID_STD)])
def test_samples_at_the_centres_cover_everything(centers, std):
  samples = np.repeat(centers, 10, axis=0)
  s = mixture_mode_stats(samples, centers, std)
  m = len(centers)
  assert s["modes_covered"] == m and s["num_modes"] == m and s["num_samples"] == 10 * m
  assert s["high_quality_fraction"] == 1.0 and s["counts"] == [10] * m
  assert s["kl_to_uniform"] == pytest.approx(0.0, abs=1e-9)
  assert s["min_count"] == 1 and s["num_std"] == 3.0
  assert isinstance(s["modes_covered"], int) and isinstance(s["kl_to_uniform"], float)


def test_all_samples_at_one_centre():
  centers = grid_centers()
  s = mixture_mode_stats(np.tile(centers[7], (100, 1)), centers, GRID_STD)
  assert s["modes_covered"] == 1 and s["counts"][7] == 100 and sum(s["counts"]) == 100
  assert s["high_quality_fraction"] == 1.0
  assert s["kl_to_uniform"] == pytest.approx(math.log(25), rel=1e-6)


def test_two_of_four_modes_gives_log_two():
  centers = ring_centers(4)
  samples = np.concatenate([np.tile(centers[0], (30, 1)), np.tile(centers[3], (30, 1))])
  s = mixture_mode_stats(samples, centers, RING_STD)
  assert s["modes_covered"] == 2 and s["counts"] == [30, 0, 0, 30]
  assert s["kl_to_uniform"] == pytest.approx(math.log(2), rel=1e-6)


def test_samples_far_away_are_not_high_quality():
  centers = ring_centers()
  rng = np.random.default_rng(0)
  samples = 10.0 + rng.normal(size=(50, 2))
  s = mixture_mode_stats(samples, centers, RING_STD)
  assert s["high_quality_fraction"] == 0.0 and s["modes_covered"] == 0 and s["counts"] == [0] * 8
  assert s["kl_to_uniform"] == pytest.approx(math.log(8))
  nan = mixture_mode_stats(np.full((4, 2), np.nan), centers, RING_STD)
  assert nan["high_quality_fraction"] == 0.0


def test_threshold_at_three_standard_deviations():
  centers = grid_centers()
  c = centers[12].astype(np.float64)  # the origin
  angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
  unit = np.stack([np.cos(angles), np.sin(angles)], 1)
  inside = c + 2.9 * GRID_STD * unit
  outside = c + 3.1 * GRID_STD * unit
  s = mixture_mode_stats(np.concatenate([inside, outside]), centers, GRID_STD)
  assert s["counts"][12] == 40 and sum(s["counts"]) == 40
  assert s["high_quality_fraction"] == pytest.approx(0.5)
  wide = mixture_mode_stats(outside, centers, GRID_STD, num_std=3.2)
  assert wide["counts"][12] == 40


def test_min_count():
  centers = ring_centers()
  assert default_min_count(2500, 25) == 10 and default_min_count(10, 8) == 1 and default_min_count(800, 8) == 10
  # 800 samples, 8 modes: the default asks 10 high-quality samples per mode (10% of 100).
  counts = [200, 200, 200, 180, 10, 9, 1, 0]
  samples = np.concatenate([np.tile(centers[k], (n, 1)) for k, n in enumerate(counts)]
                           + [np.full((800 - sum(counts), 2), 50.0)])
  s = mixture_mode_stats(samples, centers, RING_STD)
  assert s["min_count"] == 10 and s["counts"] == counts
  assert s["modes_covered"] == 5
  assert mixture_mode_stats(samples, centers, RING_STD, min_count=1)["modes_covered"] == 7
  assert mixture_mode_stats(samples, centers, RING_STD, min_count=200)["modes_covered"] == 3
  with pytest.raises(ConfigError, match="min_count"):
    mixture_mode_stats(samples, centers, RING_STD, min_count=0)
  with pytest.raises(ConfigError, match="std"):
    mixture_mode_stats(samples, centers, 0.0)
  with pytest.raises(ValueError):
    mixture_mode_stats(samples[:, :1], centers, RING_STD)


def test_mixture_samples_score_well():
  """Real draws from the ring mixture: (nearly) all high quality, every mode covered, KL small."""
  rng = np.random.default_rng(1)
  centers = ring_centers()
  samples = centers[rng.integers(0, 8, 2000)] + RING_STD * rng.normal(size=(2000, 2))
  s = mixture_mode_stats(samples, centers, RING_STD)
  assert s["modes_covered"] == 8
  assert s["high_quality_fraction"] > 0.98  # P(chi_2 <= 9) = 1 - exp(-4.5) = 0.989
  assert s["kl_to_uniform"] < 0.01
