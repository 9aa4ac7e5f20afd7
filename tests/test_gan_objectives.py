"""GAN objectives: each loss against its formula, stability at extreme logits, WGAN-GP over whole samples, R1."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.errors import ConfigError
from gen_jax.objectives import gan
from gen_jax.objectives.gan import (GAN_LOSSES, clip_weights, d_output_stats, discriminator_loss, generator_loss,
                                    gradient_penalty, r1_penalty, sample_diversity)


def _np_log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def _np_losses(kind, r, f):
  """Direct float64 transcriptions of the formulas (D = sigmoid(logit) for the classifier losses)."""
  log_d_real, log_d_fake, log_1m_d_fake = _np_log_sigmoid(r), _np_log_sigmoid(f), _np_log_sigmoid(-f)
  if kind in ("minimax", "nonsaturating"):
    d = -np.mean(log_d_real) - np.mean(log_1m_d_fake)
    g = np.mean(log_1m_d_fake) if kind == "minimax" else -np.mean(log_d_fake)
  elif kind == "wasserstein":
    d, g = np.mean(f) - np.mean(r), -np.mean(f)
  elif kind == "hinge":
    d, g = np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)), -np.mean(f)
  else:
    d, g = 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2), 0.5 * np.mean((f - 1) ** 2)
  return d, g


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_losses_match_their_formulas(kind):
  rng = np.random.default_rng(0)
  r, f = rng.normal(0.5, 2.0, 16), rng.normal(-0.5, 2.0, 16)
  want_d, want_g = _np_losses(kind, r, f)
  d = discriminator_loss(kind, jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32))
  g = generator_loss(kind, jnp.asarray(f, jnp.float32))
  np.testing.assert_allclose(d, want_d, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, want_g, rtol=1e-5, atol=1e-6)


def test_losses_are_jittable_and_reduce_over_every_element():
  rng = np.random.default_rng(1)
  r, f = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
  fn = jax.jit(lambda r, f: [(discriminator_loss(k, r, f), generator_loss(k, f)) for k in GAN_LOSSES])
  for kind, (d, g) in zip(GAN_LOSSES, fn(r, f)):
    want_d, want_g = _np_losses(kind, r.astype(np.float64).ravel(), f.astype(np.float64).ravel())
    np.testing.assert_allclose([d, g], [want_d, want_g], rtol=1e-5, atol=1e-6)


def test_classifier_losses_are_stable_at_extreme_logits():
  big = jnp.full((4,), 100.0, jnp.float32)
  for kind in ("minimax", "nonsaturating"):
    # A perfect discriminator has zero loss; a perfectly wrong one pays |logit| per term.
    np.testing.assert_allclose(discriminator_loss(kind, big, -big), 0.0, atol=1e-6)
    np.testing.assert_allclose(discriminator_loss(kind, -big, big), 200.0, rtol=1e-6)
    grads = jax.grad(discriminator_loss, argnums=(1, 2))(kind, -big, big)
    np.testing.assert_allclose(grads[0], -0.25, rtol=1e-6)  # d/dr softplus(-r) / N = -sigmoid(-r) / N
    np.testing.assert_allclose(grads[1], 0.25, rtol=1e-6)
  # Generator at D rejecting its samples (logit -100) and at D fooled (logit +100).
  np.testing.assert_allclose(generator_loss("nonsaturating", -big), 100.0, rtol=1e-6)
  np.testing.assert_allclose(generator_loss("nonsaturating", big), 0.0, atol=1e-6)
  np.testing.assert_allclose(generator_loss("minimax", -big), 0.0, atol=1e-6)
  np.testing.assert_allclose(generator_loss("minimax", big), -100.0, rtol=1e-6)
  # The saturating loss gives no signal where D rejects the samples; the non-saturating one gives a full one.
  g_sat = jax.grad(lambda f: generator_loss("minimax", f))(-big)
  g_ns = jax.grad(lambda f: generator_loss("nonsaturating", f))(-big)
  assert np.all(np.abs(g_sat) < 1e-30)
  np.testing.assert_allclose(g_ns, -0.25, rtol=1e-6)
  for kind in GAN_LOSSES:
    for r, f in ((big, -big), (-big, big), (big * 10, big * 10)):
      assert np.isfinite(float(discriminator_loss(kind, r, f)))
      assert np.isfinite(float(generator_loss(kind, f)))
      assert np.all(np.isfinite(jax.grad(discriminator_loss, argnums=(1, 2))(kind, r, f)))


def test_minimax_discriminator_loss_at_one_half_is_two_log_two():
  zeros = jnp.zeros((8,), jnp.float32)
  for kind in ("minimax", "nonsaturating"):
    np.testing.assert_allclose(discriminator_loss(kind, zeros, zeros), 2 * math.log(2), rtol=1e-6)
  # With p_g = p_data (same logits on real and fake) a constant D is best at D = 1/2.
  cs = jnp.linspace(-2.0, 2.0, 41)
  vals = jax.vmap(lambda c: discriminator_loss("minimax", jnp.full((3,), c), jnp.full((3,), c)))(cs)
  assert float(cs[int(jnp.argmin(vals))]) == pytest.approx(0.0, abs=1e-6)


def test_unknown_loss_is_a_config_error():
  with pytest.raises(ConfigError, match=r"config\.gan\.loss.*'hinge'"):
    discriminator_loss("vanilla", jnp.zeros(2), jnp.zeros(2))
  with pytest.raises(ConfigError, match=r"config\.gan\.loss"):
    generator_loss("wgan", jnp.zeros(2))
  with pytest.raises(ConfigError, match=r"config\.gan\.loss"):
    d_output_stats("ls", jnp.zeros(2), jnp.zeros(2))


def test_d_output_stats():
  r, f = jnp.array([0.0, 2.0, -1.0]), jnp.array([-3.0, 1.0, 0.5])
  for kind in ("minimax", "nonsaturating"):
    s = d_output_stats(kind, r, f)
    np.testing.assert_allclose(s["d_real"], np.mean(1 / (1 + np.exp(-np.asarray(r)))), rtol=1e-6)
    np.testing.assert_allclose(s["d_fake"], np.mean(1 / (1 + np.exp(-np.asarray(f)))), rtol=1e-6)
  for kind in ("wasserstein", "hinge", "lsgan"):
    s = d_output_stats(kind, r, f)
    np.testing.assert_allclose([s["d_real"], s["d_fake"]], [np.mean(r), np.mean(f)], rtol=1e-6)


# ---------------------------------------------------------------- gradient penalty


def _per_channel_penalty(grads, target=1.0):
  """The classic bug: norms over pixels separately for each channel ([N, H, W, C] -> [N, C])."""
  norms = np.sqrt(np.sum(np.square(grads), axis=(1, 2)))
  return np.mean((norms - target) ** 2)


def test_gradient_penalty_linear_critic_norm_is_over_the_whole_sample():
  rng = np.random.default_rng(0)
  shape = (5, 4, 4, 3)
  w = rng.normal(size=shape[1:]).astype(np.float32)
  real = jnp.asarray(rng.normal(size=shape), jnp.float32)
  fake = jnp.asarray(rng.normal(size=shape), jnp.float32)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  penalty, norms = jax.jit(gradient_penalty, static_argnums=0)(critic, real, fake, jax.random.key(0))
  w_norm = float(np.linalg.norm(w))
  np.testing.assert_allclose(norms, np.full(5, w_norm), rtol=1e-5)
  np.testing.assert_allclose(penalty, (w_norm - 1) ** 2, rtol=1e-5)
  # A per-channel implementation would disagree: this test catches it.
  buggy = _per_channel_penalty(np.broadcast_to(w, shape))
  assert abs(buggy - float(penalty)) > 0.1 * float(penalty)
  # Zero penalty when the gradient norm equals the target.
  unit = lambda x: jnp.sum(x * (w / w_norm), axis=(1, 2, 3))
  penalty1, norms1 = gradient_penalty(unit, real, fake, jax.random.key(0))
  np.testing.assert_allclose(norms1, 1.0, rtol=1e-5)
  assert float(penalty1) < 1e-9
  penalty2, _ = gradient_penalty(critic, real, fake, jax.random.key(0), target=w_norm)
  assert float(penalty2) < 1e-8


def _np_critic(x, a, b):
  """Nonlinear per-example critic [N, H, W, C] -> [N] in float64 (numpy twin of the jax one below)."""
  return np.sum(np.tanh(x * a) * b, axis=(1, 2, 3)) + 0.1 * np.sum(x, axis=(1, 2, 3)) ** 2


def test_gradient_penalty_nonlinear_critic_matches_finite_differences():
  rng = np.random.default_rng(1)
  shape = (3, 3, 3, 2)
  a, b = rng.normal(size=shape[1:]), rng.normal(size=shape[1:])
  x = rng.normal(size=shape)
  critic = lambda xs: (jnp.sum(jnp.tanh(xs * a.astype(np.float32)) * b.astype(np.float32), axis=(1, 2, 3))
                       + 0.1 * jnp.sum(xs, axis=(1, 2, 3)) ** 2)
  # real == fake makes x_hat = x whatever eps is.
  xj = jnp.asarray(x, jnp.float32)
  penalty, norms = gradient_penalty(critic, xj, xj, jax.random.key(3))
  h = 1e-6
  grads = np.zeros(shape)
  for idx in np.ndindex(*shape[1:]):
    e = np.zeros(shape)
    e[(slice(None),) + idx] = h
    grads[(slice(None),) + idx] = (_np_critic(x + e, a, b) - _np_critic(x - e, a, b)) / (2 * h)
  want_norms = np.sqrt(np.sum(grads ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(norms, want_norms, rtol=1e-4)
  np.testing.assert_allclose(penalty, np.mean((want_norms - 1) ** 2), rtol=1e-4)
  assert abs(_per_channel_penalty(grads) - float(penalty)) > 0.05 * float(penalty)


def test_gradient_penalty_draws_one_eps_per_sample():
  n, shape = 64, (64, 2, 2, 3)
  dim = 12
  real, fake = jnp.ones(shape), jnp.zeros(shape)  # x_hat = eps
  key = jax.random.key(7)
  half_sq = lambda x: 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))  # grad = x_hat: norm = ||eps_n||
  sum_sq = lambda x: 0.5 * jnp.sum(x, axis=(1, 2, 3)) ** 2  # grad = sum(x_hat) 1: norm = sum(eps_n) sqrt(D)
  _, n1 = gradient_penalty(half_sq, real, fake, key)
  _, n2 = gradient_penalty(sum_sq, real, fake, key)
  # Cauchy-Schwarz: n2 = D n1 exactly iff eps is constant over each sample.
  np.testing.assert_allclose(n2, dim * np.asarray(n1), rtol=1e-5)
  eps = np.asarray(n1) / math.sqrt(dim)
  assert np.all((eps >= 0) & (eps <= 1))
  assert len(np.unique(eps)) == n  # a fresh eps for every sample
  assert 0.3 < eps.mean() < 0.7 and eps.std() > 0.15  # ~ U[0, 1]: mean 1/2, std 0.29
  _, n3 = gradient_penalty(half_sq, real, fake, jax.random.key(8))
  assert not np.allclose(n1, n3)


def test_gradient_penalty_differentiates_wrt_critic_params_even_at_zero_gradient():
  rng = np.random.default_rng(2)
  real = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
  fake = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)

  def penalty_of(w):
    return gradient_penalty(lambda x: jnp.tanh(x @ w), real, fake, jax.random.key(0))[0]

  w = jnp.asarray(rng.normal(size=(6,)), jnp.float32)
  g = jax.jit(jax.grad(penalty_of))(w)
  assert np.all(np.isfinite(g)) and float(jnp.linalg.norm(g)) > 0
  h = 1e-2
  fd = [(penalty_of(w.at[i].add(h)) - penalty_of(w.at[i].add(-h))) / (2 * h) for i in range(2)]
  np.testing.assert_allclose(g[:2], fd, rtol=2e-2, atol=1e-3)
  g0 = jax.grad(penalty_of)(jnp.zeros(6))  # zero critic gradient: sqrt must not give NaN
  assert np.all(np.isfinite(g0))
  np.testing.assert_allclose(penalty_of(jnp.zeros(6)), 1.0)


# ---------------------------------------------------------------- R1, clipping, diversity


def test_r1_penalty_quadratic_critic_closed_form():
  rng = np.random.default_rng(3)
  m = rng.normal(size=(12, 12))
  a = (m + m.T) / 2
  x = rng.normal(size=(5, 2, 2, 3))
  critic = lambda xs: 0.5 * jnp.einsum("ni,ij,nj->n", xs.reshape(5, -1), a.astype(np.float32), xs.reshape(5, -1))
  want = np.mean(np.sum((x.reshape(5, -1) @ a) ** 2, axis=1))  # grad = A x_n
  np.testing.assert_allclose(r1_penalty(critic, jnp.asarray(x, jnp.float32)), want, rtol=1e-5)


def test_clip_weights_bounds():
  rng = np.random.default_rng(4)
  params = {"dense": {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                      "bias": jnp.asarray([0.005, -0.5, 0.02], jnp.float32)},
            "scale": jnp.asarray(-3.0, jnp.bfloat16), "count": jnp.asarray(7, jnp.int32)}
  out = jax.jit(clip_weights, static_argnums=1)(params, 0.01)
  assert jax.tree.structure(out) == jax.tree.structure(params)
  for leaf, new in zip(jax.tree.leaves(params), jax.tree.leaves(out)):
    assert new.dtype == leaf.dtype
  for name in ("kernel",):
    assert float(jnp.max(jnp.abs(out["dense"][name]))) <= 0.01
  np.testing.assert_allclose(out["dense"]["bias"], [0.005, -0.01, 0.01])
  assert float(out["scale"]) == pytest.approx(-0.01, rel=1e-2)
  assert int(out["count"]) == 7
  with pytest.raises(ConfigError, match=r"config\.gan\.clip_value"):
    clip_weights(params, 0.0)


def _np_mean_pairwise(x):
  x = x.reshape(len(x), -1).astype(np.float64)
  d = np.sqrt(np.sum((x[:, None] - x[None]) ** 2, -1))
  return d.sum() / (len(x) * (len(x) - 1))


def test_sample_diversity():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(128, 8, 8)), rng.normal(size=(96, 8, 8))
  np.testing.assert_allclose(sample_diversity(jnp.asarray(a), jnp.asarray(b)), 1.0, atol=0.03)
  small = rng.normal(size=(6, 5)) + 3.0
  np.testing.assert_allclose(gan._mean_pairwise_distance(jnp.asarray(small)), _np_mean_pairwise(small), rtol=1e-5)
  np.testing.assert_allclose(sample_diversity(jnp.asarray(0.5 * a), jnp.asarray(a)), 0.5, rtol=1e-5)
  collapsed = np.broadcast_to(rng.normal(size=(1, 8, 8)) * 5, (128, 8, 8))
  assert float(sample_diversity(jnp.asarray(collapsed), jnp.asarray(b))) < 1e-3
  nearly = collapsed + 1e-3 * rng.normal(size=collapsed.shape)
  assert float(sample_diversity(jnp.asarray(nearly), jnp.asarray(b))) < 0.01
  with pytest.raises(ValueError):
    sample_diversity(jnp.zeros((1, 3)), jnp.asarray(b))
