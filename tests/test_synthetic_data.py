"""Mode-collapse datasets: 2-D mixtures and Stacked MNIST, sampled on the device."""
import jax
import numpy as np

from gen_jax.data.synthetic import GRID_STD, RING_STD, grid_centers, load_mixture, ring_centers
from gen_jax.train import loop

from conftest import TINY


def test_mixture_centres():
  ring = ring_centers()
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0, rtol=1e-6)
  grid = grid_centers()
  assert grid.shape == (25, 2) and set(np.unique(grid)) == {-4.0, -2.0, 0.0, 2.0, 4.0}
  assert load_mixture("ring8").std == RING_STD and load_mixture("grid25").std == GRID_STD


def test_mixture_sampler_draws_around_the_labelled_centre(make_config):
  config = make_config("configs/gan_toy.py:grid", "data.batch_size=4096")
  run = loop.setup(config)
  batch, _ = jax.jit(lambda d, k: run.sampler.sample(d, run.sampler.initial_order(k), k, 0, k))(
      run.data, jax.random.key(3))
  x, y = np.asarray(batch["image"]), np.asarray(batch["label"])
  offsets = x - grid_centers()[y]
  assert abs(offsets.std() - GRID_STD) < 0.1 * GRID_STD and abs(offsets.mean()) < 0.01
  counts = np.bincount(y, minlength=25)
  assert counts.min() > 0.5 * 4096 / 25   # every mode drawn, roughly uniformly


def test_stacked_mnist_channels_are_digits_matching_the_label(make_config):
  config = make_config("configs/gan.py:stacked", *TINY)
  run = loop.setup(config)
  assert run.dataset.image_shape == (28, 28, 3) and run.dataset.num_classes == 1000
  batch, _ = jax.jit(lambda d, k: run.sampler.sample(d, run.sampler.initial_order(k), k, 0, k))(
      run.data, jax.random.key(0))
  images, labels = np.asarray(batch["image"]), np.asarray(batch["label"])
  train = run.dataset.train.images[..., 0].astype(np.float32) / 255.0
  train_labels = run.dataset.train.labels
  for image, label in zip(images, labels):
    digits = (label // 100, label // 10 % 10, label % 10)
    for c in range(3):
      match = np.flatnonzero(np.all(np.abs(train - image[..., c]) < 1e-6, axis=(1, 2)))
      assert len(match) >= 1 and digits[c] in set(train_labels[match]), (c, label)
