"""Shapes, conditioning, errors and gradients of the network bodies (gen_jax.nets)."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError
from gen_jax.nets import (
  ACTIVATIONS, LOGVAR_MAX, LOGVAR_MIN, UPSAMPLE_METHODS, VAE, MLPDecoder, MLPEncoder, Upsample2x, activation,
  build_vae, depth_to_space, nearest_upsample2x)
from gen_jax.nets.layers import gaussian_heads


def model_cfg(**overrides) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
    arch="conv", hidden=(32, 16), features=(8, 16), latent_dim=4, activation="relu",
    upsample="pixel_shuffle", conditional=False))
  cfg.update(overrides)
  return cfg


def init_apply(model: nn.Module, x: jax.Array, *args):
  """Jitted init + apply (one compile each: much faster than op-by-op on CPU)."""
  params = jax.jit(model.init)(jax.random.key(0), x, *args)
  return params, jax.jit(model.apply)(params, x, *args)


def shapes(model: nn.Module, x: jax.Array, *args, method=None):
  """(params, output) shapes via jax.eval_shape: no compile, no compute."""
  params = jax.eval_shape(model.init, jax.random.key(0), x, *args)
  return params, jax.eval_shape(functools.partial(model.apply, method=method), params, x, *args)


def test_depth_to_space_matches_numpy():
  x = np.arange(2 * 3 * 4 * 12, dtype=np.float32).reshape(2, 3, 4, 12)
  b, c = 2, 3
  ref = np.zeros((2, 6, 8, c), np.float32)
  for i in range(3):
    for j in range(4):
      for di in range(b):
        for dj in range(b):
          ref[:, i * b + di, j * b + dj, :] = x[:, i, j, (di * b + dj) * c:(di * b + dj + 1) * c]
  np.testing.assert_array_equal(np.asarray(depth_to_space(jnp.asarray(x), b)), ref)


def test_nearest_upsample2x_matches_numpy():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  ref = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
  np.testing.assert_array_equal(np.asarray(nearest_upsample2x(jnp.asarray(x))), ref)


@pytest.mark.parametrize("method", UPSAMPLE_METHODS)
def test_upsample_methods_shapes(method):
  x = jnp.ones((2, 7, 5, 6))
  params, y = init_apply(Upsample2x(4, method=method), x)
  assert y.shape == (2, 14, 10, 4)
  assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5])
def test_nearest_upsample_conv_is_upsample_then_conv_in_values_gradients_and_parameters(kernel_size):
  """The phase form (layers.nearest_upsample_conv) against the direct form, on an odd-sized input."""
  from gen_jax.nets.layers import NearestUpsampleConv
  x = jax.random.normal(jax.random.key(1), (2, 5, 7, 3))
  direct = nn.Conv(4, (kernel_size, kernel_size), padding="SAME", name="conv")
  phased = NearestUpsampleConv(4, kernel_size, name="conv")
  params = direct.init(jax.random.key(0), nearest_upsample2x(x))
  # Same parameter names, shapes and initial values: checkpoints of either form load into the other.
  jax.tree.map(np.testing.assert_array_equal, params, phased.init(jax.random.key(0), x))
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  weights = jax.random.normal(jax.random.key(3), (2, 10, 14, 4))  # a non-symmetric loss

  def loss(module, upsample):
    return lambda p, x: jnp.sum(weights * jnp.tanh(module.apply(p, upsample(x))))

  ref_value, ref_grads = jax.value_and_grad(loss(direct, nearest_upsample2x), argnums=(0, 1))(params, x)
  value, grads = jax.value_and_grad(loss(phased, lambda x: x), argnums=(0, 1))(params, x)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-4)  # a sum of 1120 terms
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads, ref_grads)


def test_upsample_unknown_method_names_config_key():
  with pytest.raises(ConfigError, match=r"config\.model\.upsample.*pixel_shuffle"):
    Upsample2x(4, method="bilinear").init(jax.random.key(0), jnp.ones((1, 2, 2, 1)))


def test_activations_and_unknown_activation():
  assert set(ACTIVATIONS) == {"relu", "leaky_relu", "tanh", "elu", "gelu", "swish"}
  x = jnp.linspace(-2.0, 2.0, 5)
  for name in ACTIVATIONS:
    assert activation(name)(x).shape == x.shape
  np.testing.assert_allclose(activation("relu")(x), np.maximum(np.asarray(x), 0))
  with pytest.raises(ConfigError, match=r"config\.model\.activation='sigmoidish'.*leaky_relu"):
    activation("sigmoidish")


def test_burda_mlp_architecture():
  x = jnp.zeros((3, 28, 28, 1))
  enc = MLPEncoder(hidden=(200, 200), latent_dim=50, activation="tanh")
  params, (mean, logvar) = shapes(enc, x)
  assert mean.shape == logvar.shape == (3, 50)
  p = params["params"]
  assert p["body"]["dense_0"]["kernel"].shape == (784, 200)
  assert p["body"]["dense_1"]["kernel"].shape == (200, 200)
  assert p["mean"]["kernel"].shape == (200, 50)
  dec = MLPDecoder(hidden=(200, 200), out_shape=(28, 28, 1), activation="tanh")
  dparams, out = shapes(dec, mean)
  assert dparams["params"]["body"]["out"]["kernel"].shape == (200, 784)
  assert out.shape == (3, 28, 28, 1)


@pytest.mark.parametrize("arch,shape,ppc", [
  ("mlp", (28, 28, 1), 1), ("mlp", (32, 32, 3), 2), ("conv", (28, 28, 1), 1),
  ("conv", (32, 32, 3), 2), ("conv", (64, 64, 3), 1)])
def test_build_vae_shapes(arch, shape, ppc):
  model = build_vae(model_cfg(arch=arch), shape, num_classes=10, params_per_channel=ppc)
  x = jnp.zeros((2, *shape))
  params, out = shapes(model, x)
  assert out.shape == (2, shape[0], shape[1], shape[2] * ppc)
  _, (mean, logvar) = shapes(model, x, method=VAE.encode)
  assert mean.shape == logvar.shape == (2, 4)
  assert model.latent_dim == 4
  decoded = jax.eval_shape(functools.partial(model.apply, method=VAE.decode), params, jnp.ones((5, 4)))
  assert decoded.shape == (5, *out.shape[1:])


@pytest.mark.parametrize("method", UPSAMPLE_METHODS)
def test_conv_decoder_upsample_methods(method):
  model = build_vae(model_cfg(upsample=method), (32, 32, 3), None)
  _, out = shapes(model, jnp.zeros((2, 32, 32, 3)))
  assert out.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_conditional_output_depends_on_label(arch):
  model = build_vae(model_cfg(arch=arch, conditional=True), (28, 28, 1), num_classes=10)
  x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
  y0, y1 = jnp.array([0, 1], jnp.int32), jnp.array([5, 7], jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x, y0)

  @jax.jit
  def out_and_mean(params, y):
    return model.apply(params, x, y), model.apply(params, x, y, method=VAE.encode)[0]

  (out0, mean0), (out1, mean1) = out_and_mean(params, y0), out_and_mean(params, y1)
  assert not np.allclose(out0, out1)
  assert not np.allclose(mean0, mean1)
  with pytest.raises(ValueError, match="pass labels y"):
    model.apply(params, x)


def test_unconditional_ignores_labels():
  model = build_vae(model_cfg(arch="mlp"), (28, 28, 1), num_classes=10)
  x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
  params, out = init_apply(model, x)
  np.testing.assert_array_equal(out, jax.jit(model.apply)(params, x, jnp.array([3, 4])))


@pytest.mark.parametrize("override,pattern", [
  ("model.arch=resnet", r"config\.model\.arch='resnet'.*mlp, conv"),
  ("model.activation=sigmoidish", r"config\.model\.activation='sigmoidish' is not valid"),
  ("model.upsample=bilinear", r"config\.model\.upsample='bilinear' is not valid"),
  ("model.latent_dim=0", r"config\.model\.latent_dim must be > 0"),
])
def test_vae_config_errors_name_the_key_at_start_up(override, pattern):
  """The rules on config.model's choices are checked once, by config.validate_config (not again in build_vae)."""
  c = config_lib.default_config("vae")
  config_lib.apply_overrides(c, ["model.arch=conv", override])
  with pytest.raises(ConfigError, match=pattern):
    config_lib.validate_config(c)


def test_conditional_vae_needs_labelled_data():
  with pytest.raises(ConfigError, match="no labels"):
    build_vae(model_cfg(conditional=True), (28, 28, 1), None)


@pytest.mark.parametrize("shape,features", [((27, 27, 1), (8, 16)), ((30, 30, 1), (8, 16)),
                                            ((28, 28, 1), (8, 16, 32))])
def test_indivisible_image_size_errors(shape, features):
  with pytest.raises(ConfigError, match=r"not divisible.*config\.model\.features"):
    build_vae(model_cfg(features=features), shape, None)


class _HugeLogvarEncoder(nn.Module):
  latent_dim: int = 3

  @nn.compact
  def __call__(self, x, y_onehot=None):
    s = self.param("s", nn.initializers.ones, ())
    h = x.reshape(x.shape[0], -1).sum(-1, keepdims=True) * s
    return jnp.zeros((x.shape[0], 3)), jnp.concatenate([1e4 * h, -1e4 * h, h], -1)


def test_logvar_is_clamped():
  model = VAE(_HugeLogvarEncoder(), MLPDecoder(hidden=(4,), out_shape=(2, 2, 1)))
  x = jnp.ones((1, 2, 2, 1))
  params = model.init(jax.random.key(0), x)
  _, logvar = model.apply(params, x, method=VAE.encode)
  np.testing.assert_allclose(logvar, [[LOGVAR_MAX, LOGVAR_MIN, 4.0]])


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_jitted_grad_through_build_vae_is_finite(arch):
  model = build_vae(model_cfg(arch=arch, conditional=True), (28, 28, 1), num_classes=10)
  x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
  y = jnp.array([1, 2], jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x, y)

  @jax.jit
  def grad_fn(params, x, y, key):
    def loss(params):
      mean, logvar = model.apply(params, x, y, method=VAE.encode)
      z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
      logits = model.apply(params, z, y, method=VAE.decode)
      return jnp.sum(logits ** 2) + jnp.sum(mean ** 2 + jnp.exp(logvar))
    return jax.grad(loss)(params)

  grads = grad_fn(params, x, y, jax.random.key(2))
  leaves = jax.tree_util.tree_leaves(grads)
  assert len(leaves) == len(jax.tree_util.tree_leaves(params))
  for g in leaves:
    assert bool(jnp.all(jnp.isfinite(g)))
  assert any(float(jnp.abs(g).sum()) > 0 for g in leaves)


class _TwoDenseHeads(nn.Module):
  """The reference: the heads as two nn.Dense layers, as the encoders were first written."""
  latent_dim: int

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.latent_dim, name="mean")(h), nn.Dense(self.latent_dim, name="logvar")(h)


class _MergedHeads(nn.Module):
  latent_dim: int

  @nn.compact
  def __call__(self, h):
    return gaussian_heads(h, self.latent_dim)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gaussian_heads_are_two_dense_layers_in_one_matmul(dtype):
  """Same parameter paths and initial values as two nn.Dense heads (old checkpoints load), same outputs
  and gradients, in float32 and bfloat16."""
  h = jax.random.normal(jax.random.key(1), (6, 20)).astype(dtype)
  merged, two = _MergedHeads(7), _TwoDenseHeads(7)
  params = merged.init(jax.random.key(0), h)
  reference = two.init(jax.random.key(0), h)
  assert jax.tree.structure(params) == jax.tree.structure(reference)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(a, b)
  cast = jax.tree.map(lambda p: p.astype(dtype), params)     # as the mixed-precision policy casts them
  out, out_ref = merged.apply(cast, h), two.apply(cast, h)
  for a, b in zip(out, out_ref):
    assert a.dtype == b.dtype == dtype and a.shape == (6, 7)
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6)
  loss = lambda m: lambda p: sum(jnp.sum(jnp.sin(o.astype(jnp.float32)))
                                 for o in m.apply(jax.tree.map(lambda q: q.astype(dtype), p), h))
  g, g_ref = jax.grad(loss(merged))(params), jax.grad(loss(two))(params)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=2e-2 if dtype == jnp.bfloat16 else 1e-5, atol=1e-6)
