"""Evaluation on several devices: batches split over an evaluation mesh give the numbers of one device."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax.eval.model_api import EvalModel
from gen_jax.eval.placement import eval_placement
from gen_jax.eval.suite import run_suite
from gen_jax.train import loop

from conftest import TINY


def test_default_is_one_device_on_cpu_and_a_count_beyond_the_local_devices_names_the_key():
  assert eval_placement(0).num_devices == 1          # fake CPU devices share the cores: no split by default
  assert eval_placement(4).num_devices == 4
  with pytest.raises(ConfigError, match=r"config.eval.num_devices=99 .* 8 device"):
    eval_placement(99)
  assert eval_placement(4).round_batch(500) == 500 and eval_placement(3).round_batch(500) == 501


def test_batches_that_divide_are_split_and_others_replicated():
  placement = eval_placement(4)
  split = placement.batch(np.zeros((8, 3), np.float32))
  assert split.sharding.spec == P(parallel.DATA_AXIS) and len(split.sharding.device_set) == 4
  odd = placement.batch(np.zeros((6, 3), np.float32))
  assert odd.sharding.is_fully_replicated and len(odd.sharding.device_set) == 4
  assert placement.batch(None) is None
  assert jax.jit(lambda x: placement.batch(x) * 2)(jnp.ones(5)).shape == (5,)   # tracers pass through


def test_model_outputs_are_split_over_the_evaluation_devices(make_config):
  config = make_config("configs/vae.py", *TINY)
  run = loop.setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  model = EvalModel(run.family, run.init_state().models, run.dataset, eval_placement(4))
  mean, _ = model.encode(np.zeros((8, 28, 28, 1), np.float32))
  assert len(mean.sharding.device_set) == 4 and mean.sharding.spec[0] == parallel.DATA_AXIS
  one = EvalModel(run.family, run.init_state().models, run.dataset, eval_placement(1))
  np.testing.assert_allclose(np.asarray(mean), np.asarray(one.encode(np.zeros((8, 28, 28, 1), np.float32))[0]),
                             rtol=1e-5, atol=1e-6)


def test_every_group_gives_the_same_numbers_on_one_and_on_four_devices(make_config):
  """The suite of a conditional VAE (likelihood with dynamic binarization and importance sampling, samples, latent,
  imputation) on an evaluation mesh of 4 devices against 1 device: same draws, same numbers. (The cas group trains
  its classifiers on the host-side samples, the same arrays as 'samples' uses.)"""
  results = {}
  for devices in (1, 4):
    config = make_config("configs/cvae.py", *TINY, "eval.batch_size=32", f"eval.num_devices={devices}",
                         "eval.suites=('likelihood', 'samples', 'latent', 'imputation')")
    run = loop.setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
    results[devices] = run_suite(run, run.init_state().models, run.keys["eval"], config.eval, int(config.seed))
  one, four = results[1]["metrics"], results[4]["metrics"]
  assert not any("skipped" in p for p in results[4]["protocol"].values()), results[4]["protocol"]
  assert set(one) == set(four) and {"nll", "fd_classifier", "ppl_encoding_lerp", "impute_mse_half"} <= set(one)
  for name in one:
    # Path lengths are finite differences of features over epsilon^2: float reassociation across devices moves
    # them more than the other metrics (up to 1.4% seen on the tiny model), so they get a looser tolerance.
    rtol = 3e-2 if name.startswith("ppl_") else 2e-3
    np.testing.assert_allclose(four[name], one[name], rtol=rtol, atol=1e-5, err_msg=name)
  assert results[4]["protocol"]["likelihood"]["devices"].startswith("4 cpu device(s)")
  # A conditional model's NLL (-log p(x|y)) is held to the baseline fitted per class.
  assert "given the class" in results[1]["protocol"]["likelihood"]["baseline"]
  assert results[1]["protocol"]["likelihood"]["devices"].startswith("1 cpu device(s)")
  assert results[4]["devices"] == results[4]["protocol"]["likelihood"]["devices"]   # eval.py's eval_hardware


def test_a_likelihood_batch_that_does_not_divide_over_the_devices_is_refused_with_the_fix():
  from gen_jax.eval.groups.likelihood import evaluate_encoder_model
  images = np.zeros((64, 4, 4, 1), np.uint8)
  with pytest.raises(ConfigError, match=r"batch size 30 does not divide over 4 devices; use 32 \(config.eval.batch_size\)"):
    evaluate_encoder_model(None, None, None, images, None, jax.random.key(0), batch_size=30,
                           placement=eval_placement(4))


def test_the_feature_classifier_splits_its_batches_over_the_evaluation_devices():
  """A placed classifier holds its weights on every device, splits each batch (rounded up to a multiple of the
  device count) over them, and gives the features of the unplaced one."""
  from gen_jax.eval.features import feature_net as feature_net_lib
  arch = feature_net_lib.Architecture(widths=(4, 4, 4), feature_dim=16, num_classes=3, image_shape=(8, 8, 1))
  params = feature_net_lib.init_params(arch, jax.random.key(0))
  images = np.random.default_rng(0).uniform(size=(10, 8, 8, 1)).astype(np.float32)
  alone = feature_net_lib.FeatureNet(params, arch, {"dataset": "toy"})
  placed = feature_net_lib.FeatureNet(params, arch, {"dataset": "toy"}).place(eval_placement(4))
  leaf = jax.tree.leaves(placed.params)[0]
  assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
  seen = []
  original = feature_net_lib.apply_net

  def spy(module, p, x, flip_average=False):
    seen.append((x.shape[0], len(x.sharding.device_set), x.sharding.is_fully_replicated))
    return original(module, p, x, flip_average)

  feature_net_lib.apply_net = spy
  try:
    feats, logits = placed.apply(images, batch_size=3)       # rounded to 4: batches of 4, 4 and 2 (+2 padding)
  finally:
    feature_net_lib.apply_net = original
  assert seen == [(4, 4, False)] * 3
  want_feats, want_logits = alone.apply(images, batch_size=3)
  np.testing.assert_allclose(feats, want_feats, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-6)
  assert placed.sha256 == alone.sha256
  # The flip-averaged read-out (each batch doubled with its mirror images inside the jit) gives the same numbers
  # split over 4 devices as on one.
  flip = dataclasses.replace(arch, flip_average=True)
  on_four = feature_net_lib.FeatureNet(params, flip, {"dataset": "toy"}).place(eval_placement(4))
  np.testing.assert_allclose(on_four.features(images, batch_size=3),
                             feature_net_lib.FeatureNet(params, flip, {"dataset": "toy"}).features(images),
                             rtol=1e-5, atol=1e-6)
