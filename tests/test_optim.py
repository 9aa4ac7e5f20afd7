"""Optimizers and schedules from config.optimizer."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gen_jax.errors import ConfigError
from gen_jax.train import optim


def cfg(**kw):
  base = dict(name="adam", learning_rate=1e-3, schedule="constant", warmup_steps=0, b1=0.9, b2=0.999, eps=1e-8,
              weight_decay=0.0, grad_clip_norm=0.0, decay_steps=1000, decay_rate=0.5, momentum=0.0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_burda_schedule_has_eight_stages_in_3_to_the_i_proportions():
  total = 3280
  sched = optim.burda_schedule(1e-3, total)
  lrs = np.array([float(sched(s)) for s in range(total)])
  stages, counts = np.unique(np.round(np.log10(lrs / 1e-3) * -7).astype(int), return_counts=True)
  np.testing.assert_array_equal(stages, np.arange(8))          # lr = 1e-3 * 10^(-i/7), i = 0..7
  np.testing.assert_array_equal(counts, [3 ** i for i in range(8)])


def test_warmup_then_constant():
  sched = optim.make_schedule(cfg(warmup_steps=10), 100)
  assert float(sched(0)) == 0.0 and float(sched(5)) == pytest.approx(5e-4) and float(sched(50)) == pytest.approx(1e-3)


def test_gradient_clipping_bounds_the_update():
  tx = optim.make_optimizer(cfg(name="sgd", learning_rate=1.0, grad_clip_norm=1.0), 10)
  params = {"w": jnp.zeros(4)}
  updates, _ = tx.update({"w": jnp.full(4, 100.0)}, tx.init(params), params)
  assert float(optax.tree.norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_weight_decay_shrinks_params_without_gradient():
  for name in ("adamw", "sgd"):
    tx = optim.make_optimizer(cfg(name=name, learning_rate=0.1, weight_decay=0.5), 10)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    assert np.all(np.asarray(updates["w"]) < 0), name


def test_unknown_optimizer_names_the_key():
  with pytest.raises(ConfigError, match=r"config\.optimizer\.name='lion'"):
    optim.make_optimizer(cfg(name="lion"), 10)
  with pytest.raises(ConfigError, match=r"config\.optimizer\.schedule='step'"):
    optim.make_schedule(cfg(schedule="step"), 10)
