"""Perceptual path length, imputation and Stacked MNIST mode counts against known answers.

Known answers: a linear generator G(z) = A z has lerp path length ||A (z1 - z0)||^2 for every t and eps, and its
slerp path length is the squared norm of A times the closed-form derivative of slerp; a decoder that represents the
truth exactly imputes it with ~0 error; mode counts of constructed sample sets are exact.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import subsets
from gen_jax.errors import ConfigError
from gen_jax.eval.groups import imputation as imp
from gen_jax.eval.groups.latent import latent_smoothness, path_length_distances, perceptual_path_length, summarize_distances
from gen_jax.eval.metrics.modes import stacked_mnist_mode_stats, stacked_mnist_modes

from conftest import TINY


# --- perceptual path length -----------------------------------------------------------------------------------------
def _linear(a):
  a = jnp.asarray(a, jnp.float32)
  return lambda z, labels: z @ a.T


def test_lerp_path_length_of_a_linear_generator_is_exact_per_pair():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(5, 3))
  z0, z1 = rng.normal(size=(2, 37, 3))
  truth = np.sum(np.square((z1 - z0) @ a.T), axis=-1)
  t = rng.uniform(size=37)
  for eps in (1e-2, 1e-4):
    d = np.asarray(path_length_distances(_linear(a), None, z0, z1, t, None, eps, spherical=False))
    np.testing.assert_allclose(d, truth, rtol=1e-2 if eps < 1e-3 else 1e-4)
  # Batched (37 pairs, batches of 16 with a padded tail): the mean over pairs, independent of t.
  stats = perceptual_path_length(_linear(a), None, z0, z1, jax.random.key(1), 1e-2, spherical=False, batch_size=16)
  assert stats["num_pairs"] == 37
  np.testing.assert_allclose(stats["mean"], truth.mean(), rtol=1e-4)
  np.testing.assert_allclose(stats["std"], truth.std(), rtol=1e-3)


def test_lerp_path_length_expectation_over_prior_pairs():
  """E ||A (z1 - z0)||^2 = 2 tr(A^T A) for independent z0, z1 ~ N(0, I)."""
  rng = np.random.default_rng(1)
  a = rng.normal(size=(4, 6))
  z0, z1 = rng.normal(size=(2, 4000, 6))
  stats = perceptual_path_length(_linear(a), None, z0, z1, jax.random.key(0), 1e-2, spherical=False,
                                 batch_size=4000)
  np.testing.assert_allclose(stats["mean"], 2 * np.trace(a.T @ a), rtol=0.06)


def test_constant_generator_has_zero_path_length():
  const = lambda z, labels: jnp.ones((z.shape[0], 4, 4, 1)) * 0.3
  z0, z1 = np.random.default_rng(2).normal(size=(2, 10, 3))
  for spherical in (False, True):
    stats = perceptual_path_length(const, None, z0, z1, jax.random.key(0), 1e-4, spherical)
    assert stats["mean"] == 0.0 and stats["mean_filtered"] == 0.0 and stats["std"] == 0.0


def test_slerp_path_length_matches_the_closed_form_derivative():
  """slerp(t) = sin((1-t) w)/sin w z0 + sin(t w)/sin w z1 has derivative w (cos(t w) z1 - cos((1-t) w) z0) / sin w;
  the forward difference over eps equals the derivative at t + eps / 2 up to O(eps^2)."""
  rng = np.random.default_rng(3)
  a = rng.normal(size=(5, 3))
  z0, z1 = rng.normal(size=(2, 20, 3))
  t = rng.uniform(size=20)
  eps = 1e-3
  cos = np.sum(z0 * z1, -1) / np.linalg.norm(z0, axis=-1) / np.linalg.norm(z1, axis=-1)
  w = np.arccos(cos)[:, None]
  tm = (t + eps / 2)[:, None]
  velocity = w * (np.cos(tm * w) * z1 - np.cos((1 - tm) * w) * z0) / np.sin(w)
  truth = np.sum(np.square(velocity @ a.T), axis=-1)
  d = np.asarray(path_length_distances(_linear(a), None, z0, z1, t, None, eps, spherical=True))
  np.testing.assert_allclose(d, truth, rtol=2e-3)
  lerp = np.asarray(path_length_distances(_linear(a), None, z0, z1, t, None, eps, spherical=False))
  assert np.max(np.abs(d - lerp) / lerp) > 0.05  # the two interpolations really differ


def test_label_is_held_fixed_along_each_path():
  """G(z, y) = A z + 100 c_y: a label change between the two path points would add ~1e4 / eps^2."""
  rng = np.random.default_rng(4)
  a, c = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), jnp.asarray(rng.normal(size=(10, 5)), jnp.float32)
  decode = lambda z, y: z @ a.T + 100.0 * c[y]
  z0, z1 = rng.normal(size=(2, 12, 3))
  labels = np.arange(12) % 10
  truth = np.sum(np.square((z1 - z0) @ np.asarray(a).T), axis=-1)
  stats = perceptual_path_length(decode, None, z0, z1, jax.random.key(0), 1e-2, False, labels, batch_size=5)
  np.testing.assert_allclose(stats["mean"], truth.mean(), rtol=1e-3)


def test_filtered_mean_drops_the_percentile_tails():
  d = np.ones(200)
  d[0] = 1e6
  stats = summarize_distances(d)
  assert stats["mean_filtered"] == 1.0
  np.testing.assert_allclose(stats["mean"], (199 + 1e6) / 200)


# --- a linear "model" whose decoder represents the truth exactly ---------------------------------------------------
class LinearImageModel:
  """decode(z) = reshape(W z); encode = the least-squares inverse with a negligible posterior variance."""
  family_name = "vae"
  params_kind = "raw"
  is_image = True
  binarization = None
  num_classes = None
  conditional = False

  def __init__(self, w: np.ndarray, shape: tuple[int, int, int], has_encoder: bool = True):
    self.models = {"w": jnp.asarray(w, jnp.float32), "w_pinv": jnp.asarray(np.linalg.pinv(w), jnp.float32)}
    self.latent_dim = w.shape[1]
    self.data_shape = shape
    self.has_encoder = has_encoder
    self.family_name = "vae" if has_encoder else "gan"

  def default_labels(self, n):
    return jnp.zeros((n,), jnp.int32)

  def prior(self, key, n):
    return jax.random.normal(key, (n, self.latent_dim))

  def model_input(self, x, key=None):
    return jnp.asarray(x, jnp.float32)

  def decode(self, z, labels=None):
    return jnp.reshape(z @ self.models["w"].T, (z.shape[0],) + self.data_shape)

  def encode(self, x, labels=None):
    mean = jnp.reshape(x, (x.shape[0], -1)) @ self.models["w_pinv"].T
    return mean, jnp.full_like(mean, -30.0)


def _linear_model_and_truth(n=6, shape=(6, 6, 1), latent=4, seed=0, has_encoder=True):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(int(np.prod(shape)), latent)) / math.sqrt(latent)
  model = LinearImageModel(w, shape, has_encoder)
  x = np.asarray(model.decode(jnp.asarray(rng.normal(size=(n, latent)), jnp.float32)))
  return model, x


def test_masks_have_the_stated_shape_and_fraction():
  half = imp.half_mask(2, 6, 4)
  assert half.shape == (2, 6, 4, 1) and half.dtype == bool and half.mean() == 0.5
  assert half[:, 3:].all() and not half[:, :3].any()
  centre = imp.centre_mask(3, 8, 8)
  assert centre.shape == (3, 8, 8, 1) and centre.mean() == 0.25
  assert centre[:, 2:6, 2:6].all() and centre.sum() == 3 * 16
  r = imp.random_mask(jax.random.key(0), 8, 28, 28)
  assert r.shape == (8, 28, 28, 1) and r.dtype == bool
  assert abs(r.mean() - 0.5) < 4 * math.sqrt(0.25 / r.size)
  assert np.array_equal(r, imp.random_mask(jax.random.key(0), 8, 28, 28))
  assert not np.array_equal(r, imp.random_mask(jax.random.key(1), 8, 28, 28))


def test_missing_pixel_mse_counts_only_missing_pixels():
  rng = np.random.default_rng(5)
  truth = rng.uniform(size=(3, 4, 4, 2))
  missing = imp.half_mask(3, 4, 4)
  imputed = truth + 0.1 * np.broadcast_to(missing, truth.shape)
  np.testing.assert_allclose(imp.missing_pixel_mse(imputed, truth, missing), 0.01, rtol=1e-12)
  changed = imputed.copy()
  changed[:, 0, 0, :] = 7.0  # an observed pixel
  assert imp.missing_pixel_mse(changed, truth, missing) == imp.missing_pixel_mse(imputed, truth, missing)
  changed[:, 3, 3, :] = 7.0  # a missing pixel
  assert imp.missing_pixel_mse(changed, truth, missing) > 1.0


@pytest.mark.parametrize("kind", imp.MASK_KINDS)
def test_exact_decoder_imputes_the_truth(kind):
  model, x = _linear_model_and_truth()
  missing = imp.make_mask(kind, jax.random.key(3), x.shape[0], 6, 6)
  baseline = imp.missing_pixel_mse(np.zeros_like(x), x, missing)
  # No prior: the exact fit is the optimum (a prior weight shrinks z, a deliberate bias for real generators).
  opt = imp.impute_latent_optimization(model, x, ~missing, jax.random.key(0), steps=300, restarts=2, batch_size=4,
                                       prior_weight=0.0)
  # The pseudo-Gibbs chain: with this delta-like encoder (variance e^-30) it alternates projections and converges;
  # the Metropolis-within-Gibbs chain rejects every move from its start (tests/test_imputation_mwg.py tests it).
  gibbs = imp.impute_conditional_sampling(model, x, ~missing, jax.random.key(1), steps=200, batch_size=4,
                                          chain="pseudo_gibbs")
  for out in (opt, gibbs):
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[~np.broadcast_to(missing, x.shape)], x[~np.broadcast_to(missing, x.shape)])
    assert imp.missing_pixel_mse(out, x, missing) < 1e-4 * baseline


def test_evaluate_imputation_metrics_and_meanfill_baseline():
  model, x = _linear_model_and_truth(n=5)
  train = np.random.default_rng(6).integers(0, 256, size=(40, 6, 6, 1), dtype=np.uint8)
  out = imp.evaluate_imputation(model, x, None, jax.random.key(0), num_examples=4, steps=150, batch_size=3,
                                restarts=2, num_imputations=2, train_images=train)
  metrics, protocol = out["metrics"], out["protocol"]
  mean = train.astype(np.float64).mean(0) / 255.0
  drawn = x[subsets.balanced_indices(5, 4, 0, "imputation")]   # 4 of the 5 images, a seeded draw
  for kind, missing in (("half", imp.half_mask(4, 6, 6)), ("centre", imp.centre_mask(4, 6, 6))):
    expect = np.sum(np.square(mean - drawn) * missing) / missing.sum()
    np.testing.assert_allclose(metrics[f"impute_mse_{kind}_meanfill"], expect, rtol=1e-6)
  for kind in imp.MASK_KINDS:
    assert metrics[f"impute_mse_{kind}"] < 1e-3 * metrics[f"impute_mse_{kind}_meanfill"]
    assert metrics[f"impute_mse_{kind}_persample"] < 1e-3 * metrics[f"impute_mse_{kind}_meanfill"]
    assert metrics[f"impute_mse_{kind}_latentopt"] < 1e-2 * metrics[f"impute_mse_{kind}_meanfill"]
  assert protocol["num_examples"] == 4 and protocol["impute_mse_<kind>"].startswith("conditional sampling")
  assert protocol["num_imputations"] == 2 and "4 of 5 images" in protocol["images"]
  # A decoder-only model reports latent optimization as its number (mean of its restarts), one restart alone
  # and the best-fitting restart, and no separate '_latentopt'.
  gan, _ = _linear_model_and_truth(n=5, has_encoder=False)
  out = imp.evaluate_imputation(gan, x, None, jax.random.key(0), 4, 5, 4, restarts=1, mean_image=mean)
  assert set(out["metrics"]) == {f"impute_mse_{k}{s}" for k in imp.MASK_KINDS
                                 for s in ("", "_persample", "_bestfit", "_meanfill")}
  assert out["protocol"]["impute_mse_<kind>"].startswith("latent optimization")
  for k in imp.MASK_KINDS:   # one restart: its mean, its single imputation and the best restart are one thing
    assert out["metrics"][f"impute_mse_{k}"] == pytest.approx(out["metrics"][f"impute_mse_{k}_bestfit"], rel=1e-6)
    assert out["metrics"][f"impute_mse_{k}"] == pytest.approx(out["metrics"][f"impute_mse_{k}_persample"], rel=1e-6)
  with pytest.raises(ConfigError, match="encoder"):
    imp.impute_conditional_sampling(gan, x, ~imp.half_mask(5, 6, 6), jax.random.key(0), 3)


def test_mean_of_draws_beats_one_draw_by_exactly_their_variance():
  """Squared error splits into bias and variance: per-sample MSE - MSE of the mean = the draws' variance on the
  missing pixels, so averaging M imputations can only help."""
  rng = np.random.default_rng(3)
  truth = rng.uniform(size=(5, 4, 4, 1))
  missing = imp.half_mask(5, 4, 4)
  draws = truth[:, None] + 0.05 + rng.normal(scale=0.2, size=(5, 8, 4, 4, 1))
  s = imp.score_draws(draws, truth, missing)
  variance = np.sum(draws.var(axis=1) * missing) / missing.sum()
  np.testing.assert_allclose(s["persample"] - s["mean"], variance, rtol=1e-10)
  np.testing.assert_allclose(s["mean"], np.sum(np.square(draws.mean(1) - truth) * missing) / missing.sum())
  assert s["persample"] > 0.04 and s["mean"] < 0.01   # variance 0.04 per draw, bias 0.05^2 + 0.04 / 8 left


def test_conditional_sampling_draws_are_independent_chains():
  model, x = _linear_model_and_truth(n=4)
  observed = ~imp.half_mask(4, 6, 6)
  d = imp.conditional_sampling_draws(model, x, observed, jax.random.key(0), steps=3, num_draws=3, batch_size=4)
  assert d.shape == (4, 3, 6, 6, 1)
  np.testing.assert_array_equal(d[:, :, :3], np.broadcast_to(x[:, None, :3], d[:, :, :3].shape))   # observed kept
  d2 = imp.conditional_sampling_draws(model, x, observed, jax.random.key(0), steps=3, num_draws=2, batch_size=4)
  np.testing.assert_allclose(d2, d[:, :2], rtol=1e-6)   # draw m does not depend on how many are drawn


def test_latent_smoothness_of_the_linear_model():
  """Encoding pairs: the posterior means are the true z, so d = ||x_{P+i} - x_i||^2 exactly (lerp, any t)."""
  model, x = _linear_model_and_truth(n=10)
  out = latent_smoothness(model, None, x, None, jax.random.key(0), num_pairs=2000, epsilon=1e-2, batch_size=500)
  truth = np.sum(np.square(x[5:] - x[:5]).reshape(5, -1), axis=-1)
  np.testing.assert_allclose(out["metrics"]["ppl_encoding_lerp"], truth.mean(), rtol=1e-3)
  assert out["protocol"]["num_pairs_encoding"] == 5 and out["protocol"]["num_pairs_prior"] == 2000
  w = np.asarray(model.models["w"], np.float64)
  np.testing.assert_allclose(out["metrics"]["ppl_prior_lerp"], 2 * np.trace(w.T @ w), rtol=0.06)


# --- real tiny models -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,extra", [("configs/vae.py", ()),
                                        ("configs/gan.py", ("model.g_width=8", "model.d_width=8",
                                                            "data.batch_size=16"))])
def test_latent_and_imputation_on_tiny_real_models(make_config, spec, extra):
  from gen_jax import parallel
  from gen_jax.eval.model_api import from_run
  from gen_jax.train import loop
  # One device: parameters replicated over 8 fake CPU devices would run every evaluation step 8 times.
  run = loop.setup(make_config(spec, *TINY, *extra), parallel.make_mesh(jax.devices()[:1]))
  model = from_run(run, run.init_state().models)
  test = run.dataset.test
  proj = jax.random.normal(jax.random.key(9), (int(np.prod(model.data_shape)), 8))
  features = jax.jit(lambda x: jnp.reshape(x, (x.shape[0], -1)) @ proj)
  out = latent_smoothness(model, features, test.images, test.labels, jax.random.key(0), num_pairs=6,
                          epsilon=1e-4, batch_size=4, feature_net="random projection")
  expected = {"ppl_prior_slerp", "ppl_prior_lerp"} | ({"ppl_encoding_lerp"} if model.has_encoder else set())
  assert expected <= set(out["metrics"])
  assert all(np.isfinite(v) and v >= 0 for v in out["metrics"].values())
  assert out["protocol"]["feature_net"] == "random projection" and out["protocol"]["family"] == model.family_name
  out = imp.evaluate_imputation(model, test.images, test.labels, jax.random.key(1), num_examples=4, steps=2,
                                batch_size=4, restarts=2)
  # per mask: mean of M, one imputation, latentopt (or bestfit), mean fill; MWG's acceptance rate (encoder models)
  assert len(out["metrics"]) == (15 if model.has_encoder else 12)
  assert all(np.isfinite(v) and 0 <= v <= 1 for v in out["metrics"].values())
  assert out["protocol"]["num_examples"] == 4


# --- Stacked MNIST ---------------------------------------------------------------------------------------------------
def _stacks(triples) -> np.ndarray:
  """Images [N, 4, 4, 3] whose channel c is the constant (digit + 0.5) / 10: a fake 'generator' output."""
  triples = np.asarray(triples, np.float32)
  return np.broadcast_to(((triples + 0.5) / 10.0)[:, None, None, :], (len(triples), 4, 4, 3)).copy()


def _read_digit(images):
  return np.floor(np.asarray(images).mean(axis=(1, 2, 3)) * 10).astype(np.int32)


def test_stacked_mnist_mode_is_red_green_blue_digits():
  assert stacked_mnist_modes(_stacks([[1, 2, 3], [9, 0, 7]]), _read_digit).tolist() == [123, 907]


def test_stacked_mnist_all_triples_cover_every_mode():
  triples = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), -1).reshape(-1, 3)
  stats = stacked_mnist_mode_stats(_stacks(np.concatenate([triples, triples])), _read_digit, batch_size=300)
  assert stats["modes_covered"] == 1000 and stats["num_modes"] == 1000 and stats["num_samples"] == 2000
  assert stats["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_collapsed_generator_loses_modes():
  stats = stacked_mnist_mode_stats(_stacks([[4, 4, 2]] * 50), _read_digit)
  assert stats["modes_covered"] == 1
  assert stats["kl_to_uniform"] == pytest.approx(math.log(1000), rel=1e-12)
  ten = np.repeat(np.array([[d, (3 * d) % 10, 9 - d] for d in range(10)]), 5, axis=0)
  stats = stacked_mnist_mode_stats(_stacks(ten), _read_digit)
  assert stats["modes_covered"] == 10
  assert stats["kl_to_uniform"] == pytest.approx(math.log(100), rel=1e-12)


def test_stacked_mnist_rejects_bad_inputs():
  with pytest.raises(ValueError, match=r"\[N >= 1, H, W, 3\]"):
    stacked_mnist_mode_stats(np.zeros((2, 4, 4, 1)), _read_digit)
  with pytest.raises(ValueError, match="digit in 0..9"):
    stacked_mnist_mode_stats(_stacks([[1, 2, 3]]), lambda x: np.full((x.shape[0],), 12))
