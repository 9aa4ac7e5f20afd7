"""Optimizers and schedules from config.optimizer."""
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.errors import ConfigError
from gen_jax import schema
from gen_jax.models import optim


def cfg(**kw):
  """config.optimizer as the schema defines it (schema.base()), with `kw` set."""
  base = schema.base().optimizer
  base.update(kw)
  return base


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


def test_linear_schedule_falls_to_its_final_fraction_at_the_last_step():
  sched = optim.make_schedule(cfg(schedule="linear", learning_rate=2e-4), 100)
  assert float(sched(0)) == pytest.approx(2e-4) and float(sched(50)) == pytest.approx(1e-4)
  assert float(sched(100)) == 0.0 and float(sched(150)) == 0.0
  half = optim.make_schedule(cfg(schedule="linear", learning_rate=1.0, final_lr_fraction=0.5), 10)
  assert float(half(10)) == pytest.approx(0.5) and float(half(5)) == pytest.approx(0.75)


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


def test_burda_schedule_in_epochs_is_the_papers_schedule_cut_short():
  """stage_steps = steps per epoch: stage i starts after 3^0 + ... + 3^(i-1) epochs, whatever the run length."""
  epoch = 7
  sched = optim.make_schedule(cfg(schedule="burda", stage_steps=epoch), 100)
  starts = np.cumsum([0] + [3 ** i for i in range(7)]) * epoch        # 0, 7, 28, 91, 280, ...
  for i, start in enumerate(starts):
    assert float(sched(start)) == pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-5), i
    if start:
      assert float(sched(start - 1)) == pytest.approx(1e-3 * 10 ** (-(i - 1) / 7), rel=1e-5), i
  assert float(sched(3280 * epoch + 5000)) == pytest.approx(1e-4, rel=1e-5)   # past the paper's end: last rate


def test_constant_then_cosine_holds_the_rate_then_decays_to_the_final_fraction():
  sched = optim.make_schedule(cfg(schedule="constant_cosine", decay_fraction=0.3, final_lr_fraction=0.1), 1000)
  lrs = np.array([float(sched(s)) for s in range(1001)])
  np.testing.assert_allclose(lrs[:701], 1e-3, rtol=1e-6)               # the first 70% constant
  assert np.all(np.diff(lrs[700:]) < 0)                                 # then strictly falling ...
  assert lrs[850] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-4)   # ... along a half cosine ...
  assert lrs[1000] == pytest.approx(1e-4, rel=1e-5)                      # ... to 10% at the last step


def test_cosine_ends_at_the_final_fraction():
  assert float(optim.make_schedule(cfg(schedule="cosine", final_lr_fraction=0.25), 500)(500)) == pytest.approx(2.5e-4)
  assert float(optim.make_schedule(cfg(schedule="cosine"), 500)(500)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("override, message", [
    ("optimizer.decay_fraction=0", r"config\.optimizer\.decay_fraction must be in \(0, 1\]"),
    ("optimizer.final_lr_fraction=1.5", r"config\.optimizer\.final_lr_fraction must be in \[0, 1\]"),
    ("optimizer.stage_steps=-600", r"config\.optimizer\.stage_steps must be >= 0"),
])
def test_schedule_fields_out_of_range_name_the_key(override, message):
  from gen_jax import config as config_lib
  with pytest.raises(ConfigError, match=message):
    config_lib.validate_config(config_lib.apply_overrides(config_lib.load_config_file("configs/vae.py"), [override]))
