"""Dynamic binarization in the train step (gen_jax/data/binarize.py).

Each pixel is 1 with probability pixel/255 (to 7.7e-6), and a batch sharded over devices must draw exactly
what one device draws. The random numbers themselves are tested in tests/test_threefry.py.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gen_jax import parallel
from gen_jax.data import binarize
from gen_jax.objectives import distributions


def test_thresholds_are_the_rounded_probabilities_and_exact_at_the_ends():
  k = np.arange(256)
  t = np.asarray(binarize.thresholds(jnp.asarray(k, jnp.uint8)))
  np.testing.assert_array_equal(t, np.round(k * 65536 / 255))
  assert t[0] == 0 and t[255] == 65536
  assert np.max(np.abs(t / 65536 - k / 255)) < 7.7e-6


def test_each_pixel_is_one_with_probability_pixel_over_255():
  levels = np.arange(256, dtype=np.uint8)
  images = jnp.asarray(np.tile(levels, (4000, 1)))  # every level, 4000 draws each
  x = np.asarray(jax.jit(binarize.dynamic_binarize)(jax.random.key(3), images))
  assert x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
  freq, p = x.mean(axis=0), levels / 255
  assert freq[0] == 0 and freq[255] == 1
  sigma = np.sqrt(np.maximum(p * (1 - p), 1e-12) / 4000)
  assert np.all(np.abs(freq - p) < 5 * sigma + 1e-9), np.max(np.abs(freq - p) / (sigma + 1e-12))


def test_batch_sharded_over_eight_devices_draws_what_one_device_draws():
  mesh = parallel.make_mesh()
  assert mesh.devices.size == 8
  images = jnp.asarray(np.random.RandomState(1).randint(0, 256, (64, 28, 28, 1)).astype(np.uint8))
  key = jax.random.key(5)
  single = jax.jit(binarize.dynamic_binarize)(key, images)
  sharded_in = jax.device_put(images, NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])))
  sharded = jax.jit(binarize.dynamic_binarize)(key, sharded_in)
  np.testing.assert_array_equal(np.asarray(sharded), np.asarray(single))


def test_softplus_and_its_gradient_match_jax_nn_softplus():
  x = jnp.concatenate([jnp.linspace(-80.0, 80.0, 2001), jnp.array([0.0, -1e-7, 1e-7])])
  np.testing.assert_allclose(distributions.softplus(x), jax.nn.softplus(x), rtol=1e-6, atol=1e-7)
  grad = jax.vmap(jax.grad(distributions.softplus))(x)
  np.testing.assert_allclose(grad, jax.nn.sigmoid(x), rtol=1e-6, atol=1e-7)
  assert float(jax.grad(distributions.softplus)(0.0)) == 0.5
