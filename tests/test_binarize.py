"""Dynamic binarization in the train step (gen_jax/data/binarize.py).

The hash must be JAX's own Threefry-2x32 bit for bit, the 16-bit numbers uniform and independent, each
pixel 1 with probability pixel/255 (to 7.7e-6), and a batch sharded over devices must draw exactly what
one device draws.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from jax.sharding import NamedSharding, PartitionSpec

from gen_jax import parallel
from gen_jax.data import binarize
from gen_jax.objectives import distributions


@pytest.mark.parametrize("key,counter,expected", [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_matches_the_published_known_answers(key, counter, expected):
  out = binarize.threefry2x32(*(jnp.uint32(v) for v in key + counter))
  assert tuple(int(v) for v in out) == expected


def test_threefry_is_jax_threefry_bit_for_bit_on_random_inputs():
  rng = np.random.RandomState(0)
  for _ in range(3):
    key = rng.randint(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    counts = rng.randint(0, 2**32, 2 * 1000, dtype=np.uint64).astype(np.uint32)
    expected = np.asarray(threefry_2x32(key, counts))
    a, b = jax.jit(binarize.threefry2x32)(key[0], key[1], counts[:1000], counts[1000:])
    np.testing.assert_array_equal(np.concatenate([a, b]), expected)


def test_thresholds_are_the_rounded_probabilities_and_exact_at_the_ends():
  k = np.arange(256)
  t = np.asarray(binarize.thresholds(jnp.asarray(k, jnp.uint8)))
  np.testing.assert_array_equal(t, np.round(k * 65536 / 255))
  assert t[0] == 0 and t[255] == 65536
  assert np.max(np.abs(t / 65536 - k / 255)) < 7.7e-6


def test_uniform_uint16_is_uniform_and_independent_across_rows_slots_and_keys():
  u = np.asarray(binarize.uniform_uint16(jax.random.key(0), (2000, 28, 28, 1))).reshape(2000, -1)
  assert u.min() >= 0 and u.max() < 65536
  # chi-square over 64 equal bins: 63 degrees of freedom, p < 1e-6 beyond ~130.
  counts = np.bincount(u.ravel() >> 10, minlength=64)
  expected = u.size / 64
  assert np.sum((counts - expected) ** 2 / expected) < 130
  # Low and high halves of one word, and neighbouring pixels, are uncorrelated.
  centred = (u - 32767.5) / 18918.6
  for lag in (1, 196, 392):
    assert abs(np.mean(centred[:, :-lag] * centred[:, lag:])) < 0.01
  assert abs(np.mean(centred[:-1] * centred[1:])) < 0.01  # neighbouring rows
  other = np.asarray(binarize.uniform_uint16(jax.random.key(1), (2000, 28, 28, 1))).reshape(2000, -1)
  assert np.mean(u == other) < 0.001


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
