"""Importance-sampled log-likelihood, active units and the split evaluator, on a model with a known marginal."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.eval.groups.likelihood import (active_units, evaluate_encoder_model, importance_log_weights,
                                     importance_sampled_log_likelihood, independent_pixel_nll)
from gen_jax.objectives import distributions as D
from gen_jax.objectives.likelihoods import make_likelihood


from linear_gaussian import LinearGaussian


def _is_ll(model, x, key, num_samples, chunk_size):
  fn = jax.jit(functools.partial(importance_sampled_log_likelihood, model.encode_fn, model.decode_fn,
                                 model.likelihood, num_samples=num_samples, chunk_size=chunk_size))
  return np.asarray(fn(x, None, key), np.float64)


def _log_w(model, x, key, num_samples):
  fn = jax.jit(functools.partial(importance_log_weights, model.encode_fn, model.decode_fn, model.likelihood,
                                 num_samples=num_samples))
  return np.asarray(fn(x, None, key), np.float64)


def test_importance_log_weights_shape_and_exactness_at_the_true_posterior():
  model = LinearGaussian()
  x = jnp.asarray(model.sample_x(5))
  log_w = _log_w(model, x, jax.random.key(0), 7)
  assert log_w.shape == (7, 5)
  # With q the exact posterior, w = p(x, z) / p(z | x) = p(x) for every z.
  np.testing.assert_allclose(log_w, np.broadcast_to(model.log_marginal(x), (7, 5)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("num_samples,chunk_size", [(1, 1), (7, 3), (5, 100), (101, 25)])
def test_exact_for_any_chunking_at_the_true_posterior(num_samples, chunk_size):
  """Every weight equals p(x): the estimate is exact only if exactly num_samples weights count (masked tail)."""
  model = LinearGaussian()
  x = jnp.asarray(model.sample_x(6))
  estimate = _is_ll(model, x, jax.random.key(1), num_samples, chunk_size)
  np.testing.assert_allclose(estimate, model.log_marginal(x), rtol=1e-5, atol=2e-4)


def test_masked_tail_counts_exactly_num_samples():
  """A padded chunk that counted its masked slots (or dropped real ones) would be off by log(n_used / n)."""
  model = LinearGaussian()
  x = jnp.asarray(model.sample_x(3))
  for num_samples, chunk_size in ((9, 4), (13, 5)):
    estimate = _is_ll(model, x, jax.random.key(2), num_samples, chunk_size)
    error = np.abs(estimate - model.log_marginal(x)).max()
    assert error < 0.5 * abs(math.log(num_samples / (num_samples + 1)))


def test_importance_sampled_nll_matches_the_true_marginal_with_an_imperfect_encoder():
  model = LinearGaussian(mean_shift=0.3, logvar_shift=0.5)
  x = jnp.asarray(model.sample_x(8))
  truth = model.log_marginal(x)
  estimate = _is_ll(model, x, jax.random.key(3), 5000, 100)
  # Standard error of log mean_k w_k ~ std(w) / (mean(w) sqrt(K)), from an independent draw of weights.
  log_w = _log_w(model, x, jax.random.key(4), 5000)
  w = np.exp(log_w - log_w.max(0))
  se = w.std(0) / w.mean(0) / math.sqrt(5000)
  assert np.all(se < 0.02)
  np.testing.assert_array_less(np.abs(estimate - truth), 4 * se + 1e-3)
  # ...much better than a few samples, and the ELBO (E_q log w) lies well below it.
  few = _is_ll(model, x, jax.random.key(3), 3, 2)
  assert np.mean(truth - few) > 5 * np.mean(np.abs(truth - estimate))
  elbo = log_w.mean(0)
  assert np.all(elbo < truth - 0.05)


def test_estimate_converges_with_more_samples():
  model = LinearGaussian(mean_shift=0.6, logvar_shift=1.0)
  x = jnp.asarray(model.sample_x(16))
  truth = model.log_marginal(x)
  gaps = [np.mean(truth - _is_ll(model, x, jax.random.key(5), k, 64)) for k in (4, 64, 1000)]
  assert gaps[0] > gaps[1] > abs(gaps[2])
  assert abs(gaps[2]) < 0.03


def test_active_units_on_synthetic_means():
  rng = np.random.default_rng(0)
  stds = np.array([1.0, 0.5, 0.15, 0.05, 0.0])  # variances 1, 0.25, 0.0225, 0.0025, 0
  means = rng.standard_normal((20_000, 5)) * stds + np.arange(5)
  count, variances = active_units(jnp.asarray(means, jnp.float32))
  assert int(count) == 3
  np.testing.assert_allclose(variances, stds ** 2, rtol=0.05, atol=1e-4)
  assert int(active_units(means, threshold=0.001)[0]) == 4


def _images_from_model(model, n):
  """uint8 [N, 1, 1, D] images: model samples clipped to [0, 1] and quantized."""
  return np.round(np.clip(model.sample_x(n, seed=7), 0, 1) * 255).astype(np.uint8)


def test_evaluate_encoder_model_against_direct_computation():
  model = LinearGaussian()
  images = _images_from_model(model, 13)
  x = images.astype(np.float32) / 255.0
  result = evaluate_encoder_model(model.encode_fn, model.decode_fn, model.likelihood, images, None,
                                  jax.random.key(0), batch_size=5, num_importance_samples=50, chunk_size=16)
  assert model.encode_calls == 1  # one compilation for all 3 batches, the padded last one included
  assert result["num_examples"] == 13 and result["num_latents"] == 2 and result["num_importance_samples"] == 50
  truth = model.log_marginal(x)
  np.testing.assert_allclose(result["nll"], -truth.mean(), rtol=1e-5)  # exact: q is the true posterior
  np.testing.assert_allclose(result["nll_bits_per_dim"], -truth.mean() / (4 * math.log(2)), rtol=1e-5)
  mean, logvar = model.encode_fn(jnp.asarray(x), None)
  np.testing.assert_allclose(result["kl"], np.asarray(D.gaussian_kl_to_standard(mean, logvar)).sum(1).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(result["elbo"], result["recon_log_prob"] - result["kl"], rtol=1e-5)
  np.testing.assert_allclose(result["elbo_bits_per_dim"], -result["elbo"] / (4 * math.log(2)), rtol=1e-5)
  recon = np.asarray(model.decode_fn(mean, None))
  np.testing.assert_allclose(result["recon_mse"], np.mean((recon - x) ** 2), rtol=1e-5)
  variances = np.var(np.asarray(mean, np.float64), axis=0)
  assert result["active_units"] == int(np.sum(variances > 0.01))
  assert all(isinstance(v, (int, float)) for v in result.values())


def test_evaluate_encoder_model_binarization_labels_and_no_nll():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 2, 2, 1)).astype(np.uint8)
  labels = rng.integers(0, 3, 7)
  enc_w = jnp.asarray(rng.standard_normal((4, 6)) * 0.3, jnp.float32)
  dec_w = jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)
  emb = jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)
  seen = []

  def encode_fn(x, y):
    seen.append(x)
    h = x.reshape(x.shape[0], -1) @ enc_w + 0.1 * y[:, None].astype(jnp.float32)
    return h[:, :3], h[:, 3:]

  def decode_fn(z, y):
    return (z @ dec_w + emb[y]).reshape(z.shape[0], 2, 2, 1)

  lik = make_likelihood("bernoulli")
  evaluate = functools.partial(evaluate_encoder_model, encode_fn, decode_fn, lik, images, labels, batch_size=4,
                               num_importance_samples=20, chunk_size=8)
  dynamic = evaluate(jax.random.key(0), binarize="dynamic", progress=True)
  assert dynamic != evaluate(jax.random.key(1), binarize="dynamic")  # the binarization follows the key
  assert all(np.isfinite(v) for v in dynamic.values())
  assert dynamic["nll"] <= -dynamic["elbo"] + 1.0  # IS estimate (20 samples) vs 1-sample ELBO: loose
  fixed = evaluate(jax.random.key(0), binarize="fixed", num_importance_samples=0)
  assert math.isnan(fixed["nll"]) and math.isnan(fixed["nll_bits_per_dim"])
  assert fixed["num_importance_samples"] == 0 and fixed["num_examples"] == 7
  # 'fixed' thresholds at 0.5: recompute the KL directly.
  x = (images.astype(np.float32) / 255.0 > 0.5).astype(np.float32)
  mean, logvar = encode_fn(jnp.asarray(x), jnp.asarray(labels))
  np.testing.assert_allclose(fixed["kl"], np.asarray(D.gaussian_kl_to_standard(mean, logvar)).sum(1).mean(), rtol=1e-5)


def test_evaluate_rejects_an_unknown_binarization():
  model = LinearGaussian()
  with pytest.raises(ValueError, match="binarization"):
    evaluate_encoder_model(model.encode_fn, model.decode_fn, model.likelihood, _images_from_model(model, 2), None,
                           jax.random.key(0), binarize="otsu")


def test_independent_pixel_baseline_against_counting_by_hand():
  """256 levels: per pixel the add-one smoothed training histogram; checked against a Python count."""
  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (7, 2, 3, 2), dtype=np.uint8)
  train[:, 0, 0, 0] = 17                                   # a constant pixel: its value gets (7 + 1) / (7 + 256)
  test = rng.integers(0, 256, (4, 2, 3, 2), dtype=np.uint8)
  test[0, 0, 0, 0] = 17
  got = independent_pixel_nll(train, test, 256, chunk=3)   # chunking must not matter
  flat_train, flat_test = train.reshape(7, -1), test.reshape(4, -1)
  want = [-sum(math.log((np.sum(flat_train[:, j] == v) + 1) / (7 + 256)) for j, v in enumerate(row))
          for row in flat_test]
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # A pixel value never seen in training still has a finite cost, log(N + 256).
  assert np.isfinite(got).all()


def test_independent_pixel_baseline_given_the_class_counts_each_class_apart():
  """A conditional model's baseline: per class, the add-one smoothed histogram of that class's training images
  (checked against a Python count); one class for everything is the unconditional baseline."""
  from gen_jax.eval.groups.likelihood import independent_pixel_metrics
  rng = np.random.default_rng(2)
  train = rng.integers(0, 4, (12, 1, 2, 1), dtype=np.uint8)
  train_y = np.array([0, 1] * 6)
  train[train_y == 1] += 100   # the classes differ: knowing it must lower the cost
  test_y = np.array([0, 1, 1])
  test = np.where(test_y[:, None, None, None] == 1, 101, 2).astype(np.uint8) * np.ones((3, 1, 2, 1), np.uint8)
  got, text = independent_pixel_metrics(train, test, 256, train_labels=train_y, test_labels=test_y)
  flat = train.reshape(12, 2)
  want = np.mean([-sum(math.log((np.sum(flat[train_y == c][:, j] == v) + 1) / (6 + 256)) for j, v in enumerate(x))
                  for x, c in zip(test.reshape(3, 2), test_y)])
  assert math.isclose(got["nll_independent"], want, rel_tol=1e-12) and "given the class" in text
  plain, plain_text = independent_pixel_metrics(train, test, 256)
  assert got["nll_independent"] < plain["nll_independent"] and "given the class" not in plain_text
  one_class, _ = independent_pixel_metrics(train, test, 256, train_labels=np.zeros(12), test_labels=np.zeros(3))
  assert one_class == plain
  with pytest.raises(ValueError, match="or neither"):
    independent_pixel_metrics(train, test, 256, train_labels=train_y)
  with pytest.raises(ValueError, match="class 7 has test images but no training images"):
    independent_pixel_metrics(train, test, 256, train_labels=train_y, test_labels=np.array([0, 7, 1]))


def test_independent_pixel_baseline_bernoulli_is_the_expectation_over_binarizations():
  rng = np.random.default_rng(1)
  train = rng.integers(0, 256, (9, 1, 2, 1), dtype=np.uint8)
  test = np.array([[[[0], [255]]], [[[64], [200]]]], np.uint8)
  p = (train.reshape(9, 2).astype(np.float64) / 255).sum(0)
  p = (p + 1) / (9 + 2)
  got = independent_pixel_nll(train, test, 2, "dynamic")
  # Exact expectation: enumerate the 4 binarizations of each 2-pixel test image.
  for i, img in enumerate(test.reshape(2, 2).astype(np.float64) / 255):
    expect = 0.0
    for b0 in (0, 1):
      for b1 in (0, 1):
        prob = (img[0] if b0 else 1 - img[0]) * (img[1] if b1 else 1 - img[1])
        expect += prob * -(math.log(p[0] if b0 else 1 - p[0]) + math.log(p[1] if b1 else 1 - p[1]))
    assert math.isclose(got[i], expect, rel_tol=1e-12)
  # Fixed binarization (data already 0 / 255, as the model sees it): plain per-pixel Bernoulli -log p.
  train_b = np.where(train > 127, 255, 0).astype(np.uint8)
  test_b = np.array([[[[0], [255]]], [[[255], [255]]]], np.uint8)
  pf = ((train_b.reshape(9, 2) == 255).sum(0) + 1) / 11
  want = [-(math.log(1 - pf[0]) + math.log(pf[1])), -(math.log(pf[0]) + math.log(pf[1]))]
  np.testing.assert_allclose(independent_pixel_nll(train_b, test_b, 2, "fixed"), want, rtol=1e-12)
  # On binary data the dynamic formula agrees (q is 0 or 1: the expectation is the plain cost).
  np.testing.assert_allclose(independent_pixel_nll(train_b, test_b, 2, "dynamic"), want, rtol=1e-12)
  with pytest.raises(ValueError, match="levels must be 2 or 256"):
    independent_pixel_nll(train, test, 16)
