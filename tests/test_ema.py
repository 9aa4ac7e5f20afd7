"""The EMA of the sampled network: its warm-up against a closed form, and batch-norm statistics that belong to the
weights being sampled (standing statistics)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import TINY, trained
from gen_jax.eval.model_api import EvalModel
from gen_jax.models import standing_stats
from gen_jax.models.state import ModelState, ema_decay_at

GAN_TINY = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")


def _ema_run(p0: float, decay: float, num_updates: int) -> tuple[list[float], list[float]]:
  """Parameters p_n = p0 + n (SGD with step 1 on gradient -1) and their EMA after each update."""
  tx = optax.sgd(1.0)
  state = ModelState.create(jnp.asarray(p0, jnp.float32), tx, ema=True)
  update = jax.jit(lambda s, t: s.apply_gradients(jnp.asarray(-1.0), tx, decay, ema_step=t))
  params, emas = [], []
  for t in range(num_updates):
    state = update(state, t)
    params.append(float(state.params))
    emas.append(float(state.ema_params))
  return params, emas


def test_ema_forgets_the_initialisation_at_once_and_matches_the_warm_up_closed_form():
  # While the warm-up binds (decay_t = t / (t + 10) < decay), the weight of p_s in the EMA after n updates is
  # 10 s(s+1)...(s+8) / (n(n+1)...(n+9)), so for p_s = p0 + s the EMA is p0 + (10 n + 1) / 11 exactly: at n = 1
  # the parameters themselves, and nothing of the far-away initialisation p0 at any n.
  p0 = 100.0
  params, emas = _ema_run(p0, 0.999, 40)
  assert params == [p0 + n for n in range(1, 41)]
  assert emas[0] == params[0]
  expected = [p0 + (10 * n + 1) / 11 for n in range(1, 41)]
  np.testing.assert_allclose(emas, expected, rtol=0, atol=2e-5)


def test_ema_decay_is_capped_by_the_configured_decay():
  assert float(ema_decay_at(0.999, 0)) == 0.0
  assert float(ema_decay_at(0.999, 10)) == pytest.approx(0.5)
  assert float(ema_decay_at(0.9, 1000)) == pytest.approx(0.9)
  params, emas = _ema_run(0.0, 0.5, 30)
  ema = None
  for t, p in enumerate(params):           # the recursion by hand, with decay min(0.5, t / (t + 10))
    d = min(0.5, t / (t + 10))
    ema = p if ema is None else d * ema + (1 - d) * p
    assert emas[t] == pytest.approx(ema, abs=1e-5)
  # Past the cap (t >= 10) it is the plain EMA with decay 0.5: for p_n = n its lag is d / (1 - d) = 1.
  assert params[-1] - emas[-1] == pytest.approx(1.0, abs=1e-3)


def test_apply_gradients_with_ema_needs_the_step():
  tx = optax.sgd(1.0)
  state = ModelState.create(jnp.zeros(2), tx, ema=True)
  with pytest.raises(TypeError, match="ema_step"):
    state.apply_gradients(jnp.ones(2), tx, 0.9)


# --- standing batch-norm statistics ---------------------------------------------------------------------------

class _DenseBN(nn.Module):
  @nn.compact
  def __call__(self, z, train: bool):
    h = nn.Dense(3)(z)
    return nn.BatchNorm(use_running_average=not train, momentum=0.8)(h), h


def test_recomputed_statistics_are_the_exact_mean_and_variance_over_all_draws():
  module = _DenseBN()
  variables = module.init(jax.random.key(0), jnp.ones((4, 2)), train=False)
  params, coll = variables["params"], {"batch_stats": jax.tree.map(lambda a: a + 5.0, variables["batch_stats"])}

  def apply_train(collections, z, y):
    _, updated = module.apply({"params": params, **collections}, z, train=True, mutable=["batch_stats"])
    return dict(updated)

  def draw(k, n):
    return 2.0 + 3.0 * jax.random.normal(k, (n, 2)), jnp.zeros((n,), jnp.int32)

  key = jax.random.key(1)
  new = jax.jit(lambda c, k: standing_stats.recompute_batch_stats(apply_train, c, draw, k, num_draws=40, chunk=10))(
      coll, key)
  zs = jnp.concatenate([draw(k, 10)[0] for k in jax.random.split(key, 4)])
  h = np.asarray(module.apply({"params": params, **coll}, zs, train=False)[1], np.float64)
  stats = new["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], h.mean(axis=0), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stats["var"], h.var(axis=0), rtol=1e-4, atol=1e-4)


def test_ema_generator_is_sampled_with_statistics_computed_for_its_weights(make_config):
  config = make_config("configs/gan.py", *TINY, *GAN_TINY, "train.num_steps=3")
  run, state = trained(config, 3)
  models, family = state.models, run.family
  gen = models["generator"]
  assert family.params_kind(models) == "ema"
  assert not np.allclose(jax.tree.leaves(gen.ema_params)[0], jax.tree.leaves(gen.params)[0])

  sampled = family.sampling_models(models)["generator"]
  # The statistics are those of the EMA weights' own activations on the fixed prior draws ...
  key = jax.random.key(7)
  expected = jax.jit(lambda g, k: standing_stats.recompute_batch_stats(
      lambda c, z, y: family.apply_sampled_train(g.ema_params, c, z, y), g.collections,
      lambda k, n: (family.prior(k, n), jnp.arange(n, dtype=jnp.int32) % 10), k))(gen, key)
  jax.tree.map(np.testing.assert_allclose, family.sampling_models(models, key)["generator"].collections, expected)
  # ... not the raw generator's running averages, which the raw weights keep.
  raw_stats = jax.tree.leaves(gen.collections["batch_stats"])
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(sampled.collections["batch_stats"]), raw_stats))
  assert family.raw_models(models)["generator"].ema_params is None
  assert family.sampling_models(family.raw_models(models))["generator"].collections is gen.collections
  # Evaluation (and the training-time curve, which goes through EvalModel) samples with them.
  model = EvalModel(family, models, run.dataset)
  jax.tree.map(np.testing.assert_array_equal, model.models["generator"].collections, sampled.collections)
  z = family.prior(jax.random.key(3), 8)
  labels = jnp.zeros((8,), jnp.int32)
  by_hand, _ = family.generator(gen.ema_params, sampled.collections, z, None, train=False)
  np.testing.assert_allclose(model.decode(z, labels), family.from_gan_space(by_hand), atol=1e-6)


def test_vaegan_encoder_keeps_ema_parameters_and_evaluation_uses_the_averaged_pair(make_config):
  config = make_config("configs/vaegan.py", *TINY, "model.g_width=8", "model.d_width=8", "model.features=(8,16)",
                       "data.batch_size=16", "train.num_steps=3")
  run, state = trained(config, 3)
  models, family = state.models, run.family
  enc = models["encoder"]
  assert enc.ema_params is not None and models["decoder"].ema_params is not None
  assert not np.allclose(jax.tree.leaves(enc.ema_params)[0], jax.tree.leaves(enc.params)[0])
  x = jnp.asarray(run.dataset.test.images[:4], jnp.float32) / 255.0
  y = jnp.zeros((4,), jnp.int32)
  mean, _ = family.encode(models, x, y)
  np.testing.assert_allclose(mean, family.apply_encoder(enc.ema_params, x * 2 - 1, y)[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(mean, family.apply_encoder(enc.params, x * 2 - 1, y)[0], atol=1e-4)
  np.testing.assert_allclose(family.reconstruct(models, x, y)[1], mean, rtol=1e-5, atol=1e-6)
  raw = family.raw_models(models)
  assert raw["encoder"].ema_params is None and raw["decoder"].ema_params is None
  np.testing.assert_allclose(family.encode(raw, x, y)[0], family.apply_encoder(enc.params, x * 2 - 1, y)[0],
                             rtol=1e-5, atol=1e-6)
  assert family.params_kind(models) == "ema" and family.params_kind(raw) == "raw"
  model = EvalModel(family, models, run.dataset)
  np.testing.assert_allclose(model.encode(x, y)[0], mean, rtol=1e-5, atol=1e-6)
