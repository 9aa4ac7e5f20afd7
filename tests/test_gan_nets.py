"""GAN network bodies (gen_jax.nets toy / dcgan / resnet_gan / gan_layers): shapes, conditioning, spectral
norm, conditional batch norm, per-sample independence of D, gradients, and build_gan errors."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError
from gen_jax.nets import resnet_gan
from gen_jax.nets import (
  ConditionalBatchNorm, DCGANDiscriminator, DCGANGenerator, ResNetDiscriminator, SNConv, SNDense, build_gan,
  num_stages, spectral_norm_estimate)

Z_DIM = 8


def gan_cfg(**overrides) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({**dict(
    arch="dcgan", g_width=8, d_width=8, hidden=(16, 16), activation="relu", upsample="nearest",
    spectral_norm=False, conditional=False, feature_layer=-1), **overrides})


def shapes(model: nn.Module, x: jax.Array, *args, **kwargs):
  """(variables, output) shapes via jax.eval_shape: no compile, no compute."""
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x, *args)
  out = jax.eval_shape(functools.partial(model.apply, **kwargs), variables, x, *args)
  return variables, out


def perturb(variables, key, scale=0.5):
  """Random perturbation of every param (stands in for training, e.g. to make cBN class-specific)."""
  leaves, tree = jax.tree_util.tree_flatten(variables["params"])
  keys = jax.random.split(key, len(leaves))
  leaves = [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  return {**variables, "params": jax.tree_util.tree_unflatten(tree, leaves)}


def test_num_stages():
  assert [num_stages(h) for h in (28, 32, 64, 14, 16, 56)] == [2, 3, 4, 1, 2, 3]
  for bad in (30, 4, 100):
    with pytest.raises(ConfigError, match="image size"):
      num_stages(bad)


def test_toy_shapes_linear_output_and_projection():
  gen, disc = build_gan(gan_cfg(arch="mlp", feature_layer=0, conditional=True, spectral_norm=True), (2,), 3)
  z = 10.0 * jnp.tile(jax.random.normal(jax.random.key(0), (1, Z_DIM)), (3, 1))
  y = jnp.array([0, 1, 0])

  @jax.jit
  def run():
    x = gen.apply(gen.init(jax.random.key(1), z, y), z, y)
    return x, disc.apply(disc.init(jax.random.key(2), x, y), x, y, train=False)

  x, (logits, feats) = run()
  assert x.shape == (3, 2) and float(jnp.max(jnp.abs(x))) > 1  # Linear output: not squashed into [-1, 1].
  assert logits.shape == (3,) and feats.shape == (3, 16)
  assert abs(float(logits[0] - logits[1])) > 1e-4  # Same x, different y: the projection term differs.
  np.testing.assert_allclose(logits[0], logits[2], rtol=1e-6)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_image_shapes(arch, image_shape):
  h, w, c = image_shape
  s = num_stages(h)
  for feature_layer in (-1, 0):
    gen, disc = build_gan(gan_cfg(arch=arch, d_width=4, feature_layer=feature_layer), image_shape, None)
    _, x = shapes(gen, jnp.zeros((2, Z_DIM)), train=False)
    assert x.shape == (2, h, w, c)
    _, (logits, feats) = shapes(disc, jnp.zeros((2, h, w, c)), train=False)
    i = feature_layer % s
    channels = 4 * 2 ** i if arch == "dcgan" else 4
    assert logits.shape == (2,)
    assert feats.shape == (2, h >> (i + 1), w >> (i + 1), channels)


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_sngan_discriminator_layout_stops_halving_one_stage_early_and_adds_two_identity_blocks(image_shape):
  """d_layout='sngan' (Miyato et al.'s CIFAR-10 D): 32x32 -> 16 -> 8, then two blocks at 8x8 that keep the map
  and add their input back (no shortcut conv); one block more than the default layout, feature_layer over all."""
  h, w, c = image_shape
  s = num_stages(h)
  gen, disc = build_gan(gan_cfg(arch="resnet", d_width=4, d_layout="sngan", feature_layer=-1), image_shape, None)
  variables, (logits, feats) = shapes(disc, jnp.zeros((2, h, w, c)), train=False)
  assert logits.shape == (2,) and feats.shape == (2, h >> (s - 1), w >> (s - 1), 4)
  blocks = sorted(k for k in variables["params"] if k.startswith("block_"))
  assert blocks == [f"block_{i}" for i in range(s + 1)]
  assert all("shortcut" not in variables["params"][f"block_{i}"] for i in (s - 1, s))
  assert all("shortcut" in variables["params"][f"block_{i}"] for i in range(s - 1))
  _, (_, first) = shapes(build_gan(gan_cfg(arch="resnet", d_width=4, d_layout="sngan", feature_layer=0),
                                   image_shape, None)[1], jnp.zeros((2, h, w, c)), train=False)
  assert first.shape == (2, h // 2, w // 2, 4)
  # A plain block is x + f(x): with its convolutions zeroed it passes its input through unchanged.
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  block = resnet_gan.DownResBlock(4, spectral_norm=False, downsample=False)
  v = block.init(jax.random.key(1), x, train=False)
  zero = jax.tree.map(jnp.zeros_like, v)
  np.testing.assert_allclose(block.apply(zero, x, train=False), x)
  assert not np.allclose(block.apply(v, x, train=False), x)


def test_a_resnet_d_layout_on_a_dcgan_names_the_fix():
  with pytest.raises(ConfigError, match=r"d_layout='sngan' is a ResNet discriminator layout.*model.arch='dcgan'"):
    build_gan(gan_cfg(arch="dcgan", d_layout="sngan"), (32, 32, 3), None)


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_conditional_generator_range_batch_stats_and_labels(arch):
  # 14x14 images (one upsampling stage) keep the compile short; the shape test covers 28/32/64.
  gen, _ = build_gan(gan_cfg(arch=arch, conditional=True), (14, 14, 1), 10)
  z = 3.0 * jnp.tile(jax.random.normal(jax.random.key(0), (1, Z_DIM)), (4, 1))
  y = jnp.array([0, 1, 2, 0], jnp.int32)

  @jax.jit
  def run():
    variables = gen.init(jax.random.key(1), z, y, train=False)
    # At init gamma = 1 and beta = 0 for every class; a perturbation stands in for training.
    variables = perturb(variables, jax.random.key(2))
    x_train, updates = gen.apply(variables, z, y, train=True, mutable=["batch_stats"])
    return variables["batch_stats"], x_train, updates["batch_stats"], gen.apply(variables, z, y, train=False)

  old_stats, x_train, new_stats, x = run()
  assert x.shape == (4, 14, 14, 1)
  assert float(jnp.min(x_train)) >= -1.0 and float(jnp.max(x_train)) <= 1.0 and float(jnp.std(x_train)) > 0
  assert float(jnp.min(x)) >= -1.0 and float(jnp.max(x)) <= 1.0
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), new_stats, old_stats)
  assert all(jax.tree_util.tree_leaves(changed))
  assert float(jnp.max(jnp.abs(x[0] - x[1]))) > 1e-3  # Same z, different y.
  np.testing.assert_allclose(x[0], x[3], atol=1e-6)  # Same z, same y.


@pytest.mark.parametrize("disc", [DCGANDiscriminator(4, spectral_norm=True, num_classes=3, feature_layer=0),
                                  ResNetDiscriminator(4, spectral_norm=True, num_classes=3)],
                         ids=["dcgan", "resnet"])
def test_projection_discriminator_uses_labels_and_does_not_mix_samples(disc):
  x = jax.random.normal(jax.random.key(0), (4, 14, 14, 1))
  x2 = x.at[1:].set(jax.random.normal(jax.random.key(1), (3, 14, 14, 1)))
  y, y2 = jnp.array([0, 1, 2, 0]), jnp.array([0, 2, 2, 1])
  x_same = jnp.tile(x[:1], (3, 1, 1, 1))
  y_same = jnp.array([0, 1, 0])

  @jax.jit
  def run():
    variables = disc.init(jax.random.key(2), x, y, train=False)
    train = functools.partial(disc.apply, variables, train=True, mutable=["batch_stats"])
    return train(x, y)[0], train(x2, y2)[0], disc.apply(variables, x_same, y_same, train=False)[0]

  (l1, f1), (l2, f2), l_same = run()
  # Train mode (spectral-norm power iteration on): sample 0 is unaffected by the rest of the batch.
  np.testing.assert_allclose(l1[0], l2[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(f1[0], f2[0], rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(l1[1:] - l2[1:]))) > 1e-4
  # Same image, different label: the projection term <embed(y), h> differs.
  assert abs(float(l_same[0] - l_same[1])) > 1e-4
  np.testing.assert_allclose(l_same[0], l_same[2], rtol=1e-5)


def run_power_iteration(layer: nn.Module, x: jax.Array, steps: int = 100):
  """Variables after ``steps`` training-mode applications (one power-iteration step each)."""
  variables = layer.init(jax.random.key(0), x)

  @jax.jit
  def iterate(variables):
    def body(_, v):
      _, updates = layer.apply(v, x, update_stats=True, mutable=["batch_stats"])
      return {**v, **updates}
    return jax.lax.fori_loop(0, steps, body, variables)

  return iterate(variables)


def test_spectral_norm_dense_has_unit_singular_value():
  layer = SNDense(6, use_bias=False)
  variables = run_power_iteration(layer, jnp.ones((1, 10)))
  kernel = np.asarray(variables["params"]["dense"]["kernel"])
  # Applying the layer to the identity reads off the normalized kernel W / sigma.
  w_sn = np.asarray(layer.apply(variables, jnp.eye(10), update_stats=False))
  np.testing.assert_allclose(np.linalg.svd(w_sn, compute_uv=False)[0], 1.0, rtol=1e-4)
  np.testing.assert_allclose(variables["batch_stats"]["sn"]["dense/kernel/sigma"],
                             spectral_norm_estimate(kernel), rtol=1e-4)
  np.testing.assert_allclose(w_sn, kernel / np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-4, atol=1e-6)


def test_spectral_norm_conv_uses_reshaped_kernel():
  # Miyato et al. 2018 normalize the [kh*kw*cin, cout] reshaped kernel; that is their convention, not the
  # exact operator norm of the convolution (which can be larger by up to a factor of about kh*kw).
  layer = SNConv(5, kernel_size=3, strides=2)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
  variables = run_power_iteration(layer, x)
  kernel = np.asarray(variables["params"]["conv"]["kernel"])
  bias = np.asarray(variables["params"]["conv"]["bias"])
  assert kernel.shape == (3, 3, 4, 5)
  s_max = np.linalg.svd(kernel.reshape(-1, 5), compute_uv=False)[0]
  np.testing.assert_allclose(variables["batch_stats"]["sn"]["conv/kernel/sigma"], s_max, rtol=1e-4)
  out = layer.apply(variables, x, update_stats=False)
  ref = jax.lax.conv_general_dilated(x, jnp.asarray(kernel / s_max), (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  # The normalized (reshaped) kernel therefore has largest singular value 1.
  np.testing.assert_allclose(spectral_norm_estimate(kernel / s_max), 1.0, rtol=1e-6)


def test_conditional_batch_norm_matches_manual():
  x = 2.0 + 3.0 * jax.random.normal(jax.random.key(0), (6, 3, 3, 4))
  y = jnp.array([0, 1, 2, 1, 0, 2])
  cbn = ConditionalBatchNorm(3)
  variables = perturb(cbn.init(jax.random.key(1), x, y), jax.random.key(2))
  out, updates = cbn.apply(variables, x, y, train=True, mutable=["batch_stats"])
  gamma = np.asarray(variables["params"]["gamma"]["embedding"])[np.asarray(y)][:, None, None, :]
  beta = np.asarray(variables["params"]["beta"]["embedding"])[np.asarray(y)][:, None, None, :]
  xn = np.asarray(x, np.float64)
  mean, var = xn.mean(axis=(0, 1, 2)), xn.var(axis=(0, 1, 2))
  np.testing.assert_allclose(out, (xn - mean) / np.sqrt(var + 1e-5) * gamma + beta, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(updates["batch_stats"]["bn"]["mean"], 0.1 * mean, rtol=1e-4)
  # Eval mode uses the running averages (here the initial mean 0 and var 1).
  out_eval = cbn.apply(variables, x, y, train=False)
  np.testing.assert_allclose(out_eval, xn / np.sqrt(1 + 1e-5) * gamma + beta, rtol=1e-4, atol=1e-4)
  # At init every class has gamma = 1 and beta = 0.
  init = cbn.init(jax.random.key(1), x, y)["params"]
  assert np.all(np.asarray(init["gamma"]["embedding"]) == 1) and np.all(np.asarray(init["beta"]["embedding"]) == 0)


def test_jitted_gan_gradients_are_finite():
  gen, disc = DCGANGenerator((14, 14, 1), 4, "nearest", num_classes=3), DCGANDiscriminator(
    4, spectral_norm=True, num_classes=3)
  z = jax.random.normal(jax.random.key(0), (4, Z_DIM))
  x = jax.random.uniform(jax.random.key(1), (4, 14, 14, 1), minval=-1, maxval=1)
  y = jnp.array([0, 1, 2, 1])

  def loss(g_params, d_params, g_vars, d_vars):
    fake, _ = gen.apply({**g_vars, "params": g_params}, z, y, train=True, mutable=["batch_stats"])
    d = {**d_vars, "params": d_params}
    (real_logits, _), _ = disc.apply(d, x, y, train=True, mutable=["batch_stats"])
    (fake_logits, _), _ = disc.apply(d, fake, y, train=True, mutable=["batch_stats"])
    return jnp.mean(nn.softplus(-real_logits) + nn.softplus(fake_logits) + nn.softplus(-fake_logits))

  @jax.jit
  def run():
    g_vars = gen.init(jax.random.key(2), z, y, train=False)
    d_vars = disc.init(jax.random.key(3), x, y, train=False)
    return jax.value_and_grad(loss, argnums=(0, 1))(g_vars["params"], d_vars["params"], g_vars, d_vars)

  value, (g_grads, d_grads) = run()
  assert np.isfinite(float(value))
  for tree in (g_grads, d_grads):
    leaves = jax.tree_util.tree_leaves(tree)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0


@pytest.mark.parametrize("family, override, pattern", [
  ("gan", "model.arch=vae", r"config\.model\.arch='vae' is not available.*mlp, dcgan, resnet"),
  ("vaegan", "model.arch=mlp", r"config\.model\.arch='mlp' is not available.*dcgan, resnet"),
  ("gan", "model.upsample=bilinear", r"config\.model\.upsample='bilinear' is not valid"),
  ("gan", "model.activation=sigmoid", r"config\.model\.activation='sigmoid' is not valid"),
  ("gan", "model.d_layout=pyramid", r"config\.model\.d_layout='pyramid' is not valid; choose one of halve, sngan"),
])
def test_gan_config_errors_name_the_key_at_start_up(family, override, pattern):
  """The choices of arch, upsample, activation and d_layout are checked once, by config.validate_config, not in
  build_gan."""
  c = config_lib.default_config(family)
  config_lib.apply_overrides(c, [override])
  with pytest.raises(ConfigError, match=pattern):
    config_lib.validate_config(c)


@pytest.mark.parametrize("overrides, shape, num_classes, match", [
  (dict(arch="mlp"), (28, 28, 1), None, "config.model.arch"),
  (dict(arch="dcgan"), (2,), None, "config.model.arch"),
  (dict(arch="resnet"), (30, 30, 3), None, "image size 30x30"),
  (dict(arch="dcgan", conditional=True), (28, 28, 1), None, "no labels"),
  (dict(arch="dcgan", feature_layer=2), (28, 28, 1), None, "config.model.feature_layer"),
  (dict(arch="mlp", feature_layer=-3), (2,), None, "config.model.feature_layer"),
  (dict(arch="dcgan", g_width=0), (28, 28, 1), None, "config.model.g_width"),
  (dict(arch="dcgan", spectral_norm="yes"), (28, 28, 1), None, "config.model.spectral_norm"),
])
def test_build_gan_errors(overrides, shape, num_classes, match):
  with pytest.raises(ConfigError, match=match):
    build_gan(gan_cfg(**overrides), shape, num_classes)


def test_build_gan_defaults_for_old_configs():
  gen, disc = build_gan(ml_collections.ConfigDict(dict(arch="resnet")), (32, 32, 3), 10)
  assert (gen.width, disc.width, disc.spectral_norm, gen.num_classes, disc.feature_layer) == (128, 128, True, None, -1)
  gen, disc = build_gan(ml_collections.ConfigDict(dict(arch="dcgan", conditional=True)), (28, 28, 1), 10)
  assert (gen.width, disc.spectral_norm, gen.num_classes, disc.num_classes, gen.upsample) == (
    64, False, 10, 10, "nearest")
  gen, disc = build_gan(ml_collections.ConfigDict(dict(arch="mlp")), (2,), None)
  assert tuple(gen.hidden) == (128, 128, 128) and gen.out_dim == 2 and not disc.spectral_norm


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("size", [(8, 6), (7, 9)])
def test_conv_then_avg_pool_as_one_strided_conv_equals_the_direct_form(spectral_norm, kernel_size, size):
  """SNConv(pool=True) (layers.conv_avg_pool) against conv then 2x2 average pooling: same variables,
  outputs, spectral-norm statistics and gradients, on even and odd sizes."""
  from gen_jax.nets.gan_layers import downsample2x

  class Direct(nn.Module):
    @nn.compact
    def __call__(self, x, update_stats=False):
      return downsample2x(SNConv(4, kernel_size, 1, spectral_norm, name="c")(x, update_stats=update_stats))

  class Fused(nn.Module):
    @nn.compact
    def __call__(self, x, update_stats=False):
      return SNConv(4, kernel_size, 1, spectral_norm, pool=True, name="c")(x, update_stats=update_stats)

  x = jax.random.normal(jax.random.key(1), (2, *size, 3))
  variables = Direct().init(jax.random.key(0), x)
  jax.tree.map(np.testing.assert_array_equal, variables, Fused().init(jax.random.key(0), x))
  weights = jax.random.normal(jax.random.key(2), (2, size[0] // 2, size[1] // 2, 4))

  def loss(module):
    def f(params, x):
      y, stats = module.apply({**variables, "params": params}, x, update_stats=True, mutable=["batch_stats"])
      return jnp.sum(weights * jnp.tanh(y)), stats
    return jax.value_and_grad(f, argnums=(0, 1), has_aux=True)

  (ref, ref_stats), ref_grads = loss(Direct())(variables["params"], x)
  (val, stats), grads = loss(Fused())(variables["params"], x)
  np.testing.assert_allclose(val, ref, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), stats, ref_stats)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads, ref_grads)


def test_pooling_conv_refuses_a_stride():
  with pytest.raises(ValueError, match="pool=True needs strides=1"):
    SNConv(4, 3, 2, False, pool=True).init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
