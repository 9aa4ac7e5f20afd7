"""The unrolled Threefry-2x32 random numbers of the train step (gen_jax/threefry.py).

The hash must be JAX's own Threefry-2x32 bit for bit; the 16-bit and 32-bit numbers uniform and
independent; the normal draws standard normal (moments and a Kolmogorov-Smirnov test); and every draw a
pure function of (key, shape), so a result sharded over devices equals the unsharded one.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from jax.sharding import NamedSharding, PartitionSpec
from scipy import stats

from gen_jax import parallel, threefry


@pytest.mark.parametrize("key,counter,expected", [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry_matches_the_published_known_answers(key, counter, expected):
  out = threefry.threefry2x32(*(jnp.uint32(v) for v in key + counter))
  assert tuple(int(v) for v in out) == expected


def test_threefry_is_jax_threefry_bit_for_bit_on_random_inputs():
  rng = np.random.RandomState(0)
  for _ in range(3):
    key = rng.randint(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    counts = rng.randint(0, 2**32, 2 * 1000, dtype=np.uint64).astype(np.uint32)
    expected = np.asarray(threefry_2x32(key, counts))
    a, b = jax.jit(threefry.threefry2x32)(key[0], key[1], counts[:1000], counts[1000:])
    np.testing.assert_array_equal(np.concatenate([a, b]), expected)


def test_uniform_uint16_is_uniform_and_independent_across_rows_slots_and_keys():
  u = np.asarray(threefry.uniform_uint16(jax.random.key(0), (2000, 28, 28, 1))).reshape(2000, -1)
  assert u.min() >= 0 and u.max() < 65536
  # chi-square over 64 equal bins: 63 degrees of freedom, p < 1e-6 beyond ~130.
  counts = np.bincount(u.ravel() >> 10, minlength=64)
  expected = u.size / 64
  assert np.sum((counts - expected) ** 2 / expected) < 130
  # Low and high halves of one word, and neighbouring pixels, are uncorrelated.
  centred = (u - 32767.5) / 18918.6
  for lag in (1, 2, 3, 196, 392, 393):
    assert abs(np.mean(centred[:, :-lag] * centred[:, lag:])) < 0.01
  assert abs(np.mean(centred[:-1] * centred[1:])) < 0.01  # neighbouring rows
  other = np.asarray(threefry.uniform_uint16(jax.random.key(1), (2000, 28, 28, 1))).reshape(2000, -1)
  assert np.mean(u == other) < 0.001


def test_bits32_is_uniform_over_all_32_bits_and_differs_by_key():
  w = np.asarray(threefry.bits32(jax.random.key(0), (1001, 37)))  # odd size: the last hash is cut
  assert w.dtype == np.uint32 and w.shape == (1001, 37)
  bits = (w.reshape(-1, 1) >> np.arange(32, dtype=np.uint32)) & 1
  # each bit is 1 with probability 1/2: 37037 draws, 5 sigma ~ 0.013
  assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.013)
  assert len(np.unique(w)) > 0.999 * w.size
  other = np.asarray(threefry.bits32(jax.random.key(1), (1001, 37)))
  assert np.mean(w == other) < 0.001


def test_normal_is_standard_normal():
  z = np.asarray(threefry.normal(jax.random.key(7), (200_000,)), np.float64)
  assert z.dtype == np.float64 and np.all(np.isfinite(z))
  n = z.size
  assert abs(z.mean()) < 5 / np.sqrt(n)
  assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
  assert abs(np.mean(z ** 3)) < 5 * np.sqrt(15 / n)            # skewness of N(0, 1) is 0
  assert abs(np.mean(z ** 4) - 3) < 5 * np.sqrt(96 / n)         # kurtosis 3
  assert stats.kstest(z, "norm").pvalue > 1e-4


def test_normal_keeps_the_requested_dtype_and_is_a_function_of_the_key():
  key = jax.random.key(3)
  a = threefry.normal(key, (4, 5), jnp.bfloat16)
  assert a.dtype == jnp.bfloat16 and a.shape == (4, 5)
  np.testing.assert_array_equal(np.asarray(threefry.normal(key, (4, 5))), np.asarray(threefry.normal(key, (4, 5))))
  assert not np.array_equal(np.asarray(threefry.normal(key, (4, 5))),
                            np.asarray(threefry.normal(jax.random.key(4), (4, 5))))


def test_sharded_draws_equal_unsharded_ones():
  mesh = parallel.make_mesh()
  assert mesh.devices.size == 8
  key = jax.random.key(5)
  out = NamedSharding(mesh, PartitionSpec(None, mesh.axis_names[0]))
  for fn, shape in ((threefry.normal, (2, 64, 50)), (threefry.bits32, (2, 64, 50))):
    single = jax.jit(fn, static_argnums=1)(key, shape)
    sharded = jax.jit(fn, static_argnums=1, out_shardings=out)(key, shape)
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(single))
