"""Elementwise distributions and image likelihoods against closed forms, scipy, Monte Carlo and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from gen_jax.errors import ConfigError
from gen_jax.objectives import distributions as D
from gen_jax.objectives import likelihoods as L

GRID = np.arange(256) / 255.0
HALF = 0.5 / 255.0


def _reference_log_mass(dist, grid, mean, scale):
  """float64 log-mass of each grid bin from scipy log-CDFs (lower tail) or log-survival functions (upper)."""
  a = (grid + HALF - mean) / scale
  b = (grid - HALF - mean) / scale

  def log_diff(hi, lo):  # log(exp(hi) - exp(lo)), hi > lo
    return hi + np.log1p(-np.exp(lo - hi))

  with np.errstate(all="ignore"):
    interior = np.where(a + b > 0, log_diff(dist.logsf(b), dist.logsf(a)), log_diff(dist.logcdf(a), dist.logcdf(b)))
  return np.where(grid < HALF, dist.logcdf(a), np.where(grid > 1 - HALF, dist.logsf(b), interior))


# ---------------------------------------------------------------- Gaussian terms


@pytest.mark.parametrize("mean,logvar", [(0.0, 0.0), (1.5, -1.0), (-0.7, 0.8), (0.2, -3.0)])
def test_gaussian_kl_matches_monte_carlo(mean, logvar):
  n = 200_000
  z = mean + math.exp(0.5 * logvar) * np.random.default_rng(0).standard_normal(n)
  log_ratio = stats.norm.logpdf(z, mean, math.exp(0.5 * logvar)) - stats.norm.logpdf(z)
  mc, se = log_ratio.mean(), log_ratio.std() / math.sqrt(n)
  kl = float(D.gaussian_kl_to_standard(jnp.float32(mean), jnp.float32(logvar)))
  assert kl >= 0
  assert abs(kl - mc) < 5 * se + 1e-4


def test_gaussian_kl_is_elementwise_and_zero_at_prior():
  mean = jnp.array([[0.0, 1.0], [2.0, -1.0]])
  logvar = jnp.array([[0.0, 0.5], [-1.0, 0.0]])
  kl = D.gaussian_kl_to_standard(mean, logvar)
  assert kl.shape == (2, 2)
  assert float(kl[0, 0]) == 0.0
  np.testing.assert_allclose(kl[1, 1], 0.5, rtol=1e-6)  # mean^2 / 2 at unit variance


def test_gaussian_log_probs_match_scipy():
  x = np.linspace(-4, 4, 17)
  mean, logvar = 0.3, -0.6
  np.testing.assert_allclose(D.gaussian_log_prob(x, mean, logvar),
                             stats.norm.logpdf(x, mean, math.exp(0.5 * logvar)), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(D.standard_normal_log_prob(x), stats.norm.logpdf(x), rtol=1e-5, atol=1e-5)


def test_reparameterize_shape_and_moments():
  mean = jnp.array([[1.0, -2.0, 0.0]])
  logvar = jnp.array([[0.0, math.log(4.0), math.log(0.01)]])
  z = D.reparameterize(jax.random.key(0), mean, logvar, 20_000)
  assert z.shape == (20_000, 1, 3)
  std = np.sqrt(np.exp(np.asarray(logvar)))
  np.testing.assert_allclose(z.mean(0), mean, atol=4 * std.max() / math.sqrt(20_000) * 2)
  np.testing.assert_allclose(z.std(0), std, rtol=0.03)


def test_reparameterized_gradient_matches_finite_differences():
  """d/d(mean, logvar) of (1/S) sum_s f(mean + exp(logvar/2) eps_s), eps fixed, equals central differences."""
  with jax.enable_x64(True):
    eps = jax.random.normal(jax.random.key(1), (64, 3), jnp.float64)

    @jax.jit
    def objective(mean, logvar):
      z = mean + jnp.exp(0.5 * logvar) * eps
      return jnp.mean(jnp.sum(jnp.sin(z) * z + 0.3 * z ** 3, axis=-1))

    mean = jnp.array([0.3, -1.2, 0.7], jnp.float64)
    logvar = jnp.array([-0.5, 0.4, -2.0], jnp.float64)
    g_mean, g_logvar = jax.jit(jax.grad(objective, argnums=(0, 1)))(mean, logvar)
    assert g_mean.dtype == jnp.float64
    h = 1e-6
    for j in range(3):
      e = jnp.zeros(3, jnp.float64).at[j].set(h)
      fd_mean = (objective(mean + e, logvar) - objective(mean - e, logvar)) / (2 * h)
      fd_logvar = (objective(mean, logvar + e) - objective(mean, logvar - e)) / (2 * h)
      np.testing.assert_allclose(g_mean[j], fd_mean, rtol=1e-6, atol=1e-8)
      np.testing.assert_allclose(g_logvar[j], fd_logvar, rtol=1e-6, atol=1e-8)
  assert jnp.ones(1).dtype == jnp.float32  # x64 was restored


def test_reparameterized_gradient_of_second_moment_matches_closed_form():
  """E[z^2] = mean^2 + exp(logvar): d/dmean = 2 mean, d/dlogvar = exp(logvar)."""
  mean, logvar = jnp.float32(0.8), jnp.float32(-0.4)
  n = 200_000

  def estimate(mean, logvar):
    return jnp.mean(jnp.square(D.reparameterize(jax.random.key(2), mean, logvar, n)))

  g_mean, g_logvar = jax.grad(estimate, argnums=(0, 1))(mean, logvar)
  # Per-sample gradients are 2 z and z eps sigma; 5 standard errors.
  se_mean = 2 * math.exp(0.5 * float(logvar)) / math.sqrt(n)
  se_logvar = math.exp(float(logvar)) * math.sqrt(2 + 4 * float(mean) ** 2 / math.exp(float(logvar))) / math.sqrt(n)
  assert abs(float(g_mean) - 2 * float(mean)) < 5 * se_mean
  assert abs(float(g_logvar) - math.exp(float(logvar))) < 5 * se_logvar


# ---------------------------------------------------------------- Bernoulli, log-mean-exp


def test_bernoulli_log_prob_matches_direct_formula():
  logits = np.linspace(-8, 8, 9)
  p = 1 / (1 + np.exp(-logits))
  for x in (0.0, 1.0):
    np.testing.assert_allclose(D.bernoulli_log_prob(x, logits), x * np.log(p) + (1 - x) * np.log1p(-p),
                               rtol=1e-5, atol=1e-6)


def test_bernoulli_log_prob_is_finite_at_extreme_logits():
  logits = jnp.array([100.0, -100.0, 100.0, -100.0])
  x = jnp.array([1.0, 0.0, 0.0, 1.0])
  lp = D.bernoulli_log_prob(x, logits)
  np.testing.assert_allclose(lp, [0.0, 0.0, -100.0, -100.0], atol=1e-6)
  grads = jax.grad(lambda l: jnp.sum(D.bernoulli_log_prob(x, l)))(logits)
  assert np.all(np.isfinite(grads))


def test_log_mean_exp():
  a = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 2.0]])
  expected = special.logsumexp(a, axis=1) - math.log(3)
  np.testing.assert_allclose(D.log_mean_exp(jnp.asarray(a), axis=1), expected, rtol=1e-6)
  np.testing.assert_allclose(D.log_mean_exp(jnp.asarray(a), axis=(0, 1)), special.logsumexp(a) - math.log(6),
                             rtol=1e-6)


# ---------------------------------------------------------------- discretized pixel distributions

# Jitted once at import: eager op-by-op dispatch would compile every primitive for every shape (slow on CPU).
DISCRETIZED = [(jax.jit(D.discretized_gaussian_log_prob), stats.norm),
               (jax.jit(D.discretized_logistic_log_prob), stats.logistic)]


@pytest.mark.parametrize("fn,dist", DISCRETIZED, ids=["gaussian", "logistic"])
def test_discretized_masses_sum_to_one(fn, dist):
  means = np.array([-50.0, -3.0, -0.01, 0.0, 0.2, 0.5, 0.77, 1.0, 1.3, 40.0])
  log_scales = np.array([-7.0, -5.0, -2.0, 0.0, 3.0, 7.0])
  m, s = np.meshgrid(means, log_scales, indexing="ij")
  # float64: the algorithm itself is exact up to rounding.
  with jax.enable_x64(True):
    lp64 = fn(jnp.asarray(GRID)[:, None, None], jnp.asarray(m), jnp.asarray(s))
    assert lp64.dtype == jnp.float64
    np.testing.assert_allclose(np.exp(special.logsumexp(np.asarray(lp64), axis=0)), 1.0, atol=1e-9)
  # float32: bin edges sitting on the mean at the smallest scale feel the rounding of k / 255 (~1e-5).
  lp = fn(jnp.asarray(GRID, jnp.float32)[:, None, None], jnp.asarray(m, jnp.float32), jnp.asarray(s, jnp.float32))
  assert lp.shape == (256,) + m.shape
  assert np.all(np.isfinite(lp)) and np.all(lp <= 1e-6)
  np.testing.assert_allclose(np.exp(special.logsumexp(np.asarray(lp, np.float64), axis=0)), 1.0, atol=5e-5)


@pytest.mark.parametrize("fn,dist", DISCRETIZED, ids=["gaussian", "logistic"])
@pytest.mark.parametrize("mean,log_scale", [(0.5, -3.0), (0.1, -1.0), (0.9, -5.0), (-0.2, 0.5), (0.33, -6.5)])
def test_discretized_matches_scipy_cdf_differences(fn, dist, mean, log_scale):
  scale = math.exp(log_scale)
  lp = np.asarray(fn(jnp.asarray(GRID, jnp.float32), jnp.float32(mean), jnp.float32(log_scale)), np.float64)
  ref = _reference_log_mass(dist, GRID, mean, scale)
  # Where the mass is representable, plain CDF differences agree too (interior bins).
  with np.errstate(divide="ignore"):   # masses that underflow to 0 in float64 CDF differences: log 0 = -inf
    plain = np.log(dist.cdf((GRID[1:-1] + HALF - mean) / scale) - dist.cdf((GRID[1:-1] - HALF - mean) / scale))
  ok = plain > -30
  np.testing.assert_allclose(lp[1:-1][ok], plain[ok], rtol=1e-4, atol=1e-4)
  # Everywhere, including masses far below float32's range, against float64 log-CDFs.
  np.testing.assert_allclose(lp, ref, rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("fn,dist", DISCRETIZED, ids=["gaussian", "logistic"])
def test_discretized_tiny_masses_and_gradients_are_finite(fn, dist):
  x = jnp.asarray([0.0, 3 / 255, 0.5, 200 / 255, 1.0], jnp.float32)
  grad_fn = jax.jit(jax.grad(lambda x, m, s: jnp.sum(fn(x, m, s)), argnums=(1, 2)))
  for mean, log_scale in [(30.0, -7.0), (-30.0, -7.0), (0.5, 7.0), (0.5, -7.0)]:
    lp = fn(x, jnp.float32(mean), jnp.float32(log_scale))
    np.testing.assert_allclose(lp, _reference_log_mass(dist, np.asarray(x, np.float64), mean, math.exp(log_scale)),
                               rtol=1e-4, atol=1e-3)
    grads = grad_fn(x, jnp.float32(mean), jnp.float32(log_scale))
    with jax.enable_x64(True):
      grads64 = grad_fn(jnp.asarray(x, jnp.float64), jnp.float64(mean), jnp.float64(log_scale))
    np.testing.assert_allclose(grads, grads64, rtol=1e-3)  # the far-tail derivative of log Phi is exact


def test_discretized_gaussian_gradient_far_in_the_tail():
  """d/dmean log P(x) ~ (x - mean) / s^2 when the bin is ~1e5 scales away: finite and right in float32."""
  x, mean, log_scale = jnp.float32(0.0), jnp.float32(100.0), jnp.float32(-7.0)
  grad_fn = jax.jit(jax.grad(D.discretized_gaussian_log_prob, argnums=1))
  g = grad_fn(jnp.float32(3 / 255), mean, log_scale)
  expected = (3 / 255 - 100.0) / math.exp(-14.0)
  np.testing.assert_allclose(g, expected, rtol=1e-3)
  g_edge = grad_fn(x, mean, log_scale)
  np.testing.assert_allclose(g_edge, (0.5 / 255 - 100.0) / math.exp(-14.0), rtol=1e-3)


# ---------------------------------------------------------------- image likelihoods


def test_make_likelihood_kinds_and_error():
  expected = {"bernoulli": 1, "gaussian": 2, "gaussian_fixed": 1, "logistic": 2}
  for name, p in expected.items():
    lik = L.make_likelihood(name)
    assert lik.name == name and lik.params_per_channel == p and lik.is_discrete
    assert isinstance(lik, L.Likelihood)
    hash(lik)  # usable as a static jit argument
  with pytest.raises(ConfigError, match=r"config\.model\.likelihood.*'bernoulli'.*'logistic'"):
    L.make_likelihood("laplace")
  with pytest.raises(ConfigError):
    L.make_likelihood("gaussian_fixed", fixed_sigma=0.0)


def _per_pixel_reference(name, x, out):
  """The elementwise log-masses the likelihood ``name`` should sum (parameters in channel blocks)."""
  c = x.shape[-1]
  loc, rest = out[..., :c], out[..., c:]
  if name == "bernoulli":
    return D.bernoulli_log_prob(x, loc)
  if name == "gaussian_fixed":
    return D.discretized_gaussian_log_prob(x, loc, math.log(0.2))
  log_scale = jnp.clip(rest, L.LOG_SCALE_MIN, L.LOG_SCALE_MAX)
  if name == "gaussian":
    return D.discretized_gaussian_log_prob(x, loc, log_scale)
  return D.discretized_logistic_log_prob(x, loc, log_scale)


@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "gaussian_fixed", "logistic"])
def test_likelihood_shapes_and_values(name):
  lik = L.make_likelihood(name, fixed_sigma=0.2)
  rng = np.random.default_rng(3)
  x = rng.integers(0, 256, (2, 4, 3, 2)).astype(np.float32) / 255.0
  if name == "bernoulli":
    x = np.round(x)
  out = rng.standard_normal((2, 4, 3, 2 * lik.params_per_channel)).astype(np.float32)
  out[..., 2:] *= 3.0  # log-scales beyond the clip range too

  @jax.jit
  def run(x, out, key):
    sample = lik.sample(key, out)
    return (lik.log_prob(x, out), _per_pixel_reference(name, x, out).sum(axis=(1, 2, 3)), lik.mean(out), sample,
            lik.log_prob(sample, out))

  lp, expected, mean, sample, sample_lp = run(x, out, jax.random.key(0))
  assert lp.shape == (2,)
  assert np.all(np.asarray(lp) <= 0)
  np.testing.assert_allclose(lp, expected, rtol=1e-5)  # summed over H, W, C of the elementwise log-masses
  # Broadcasts over leading sample axes.
  assert jax.eval_shape(lik.log_prob, x[None], jnp.stack([out, out])).shape == (2, 2)
  assert mean.shape == x.shape and float(mean.min()) >= 0 and float(mean.max()) <= 1
  assert sample.shape == x.shape
  np.testing.assert_allclose(np.asarray(sample) * 255, np.round(np.asarray(sample) * 255), atol=1e-3)
  assert np.all(np.isfinite(sample_lp))


@pytest.mark.parametrize("name", ["gaussian", "logistic"])
def test_likelihood_samples_follow_the_masses(name):
  """The empirical histogram of samples matches exp(log_prob) bin by bin (the edges included)."""
  lik = L.make_likelihood(name)
  n = 40_000
  out = jnp.broadcast_to(jnp.array([0.05, math.log(0.04)]), (n, 1, 1, 2))
  samples = np.asarray(jax.jit(lik.sample)(jax.random.key(4), out)).reshape(-1)
  levels = np.round(samples * 255).astype(int)
  counts = np.bincount(levels, minlength=256)
  masses = np.exp(np.asarray(jax.jit(lik.log_prob)(jnp.asarray(GRID).reshape(256, 1, 1, 1), out[:256]), np.float64))
  se = np.sqrt(n * masses * (1 - masses)) + 1
  assert np.all(np.abs(counts - n * masses) < 5 * se)
  assert counts[0] > 0.05 * n  # the extended lower edge bin


def test_bits_per_dim():
  assert L.bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
