"""Elementwise log-densities, log-masses and KL terms used by the generative objectives.

Every function here is pure, jittable and works elementwise with broadcasting: nothing is
summed over data or latent dimensions (callers decide which axes make up an event).

Discretized pixel distributions
-------------------------------
Pixels x live on the grid x_k = k / (K - 1), k = 0..K-1 (K = ``num_bins``, 256 for 8-bit images).
Each grid point owns the bin [x - h, x + h] of half-width h = 1 / (2 (K - 1)); the first and the
last bin are extended to -inf and +inf (Salimans et al. 2017, PixelCNN++), so that for any
continuous density with CDF F the masses

  P(x_0)     = F(x_0 + h)
  P(x_k)     = F(x_k + h) - F(x_k - h)          0 < k < K - 1
  P(x_{K-1}) = 1 - F(x_{K-1} - h)

sum to exactly one. The log-masses are computed from log-CDFs, never by subtracting CDFs.
"""
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erfcx, log_ndtr, logsumexp

from gen_jax import threefry

Array = jax.Array

LOG_2PI = math.log(2.0 * math.pi)

# Below this value of w * (1 + |z|) (w = bin width / scale, z = standardized bin centre) the exact
# Gaussian log-CDF difference loses precision to cancellation in float32, while the corrected midpoint
# rule (see discretized_gaussian_log_prob) has a relative error ~ (w z)^6 / 322560 < 1e-9: use it there.
_GAUSSIAN_MIDPOINT_THRESHOLD = 0.25


def gaussian_kl_to_standard(mean: Array, logvar: Array) -> Array:
  """Closed-form KL(N(mean, exp(logvar)) || N(0, 1)), elementwise (not summed).

  KL = 1/2 (exp(logvar) + mean^2 - 1 - logvar) >= 0.
  """
  return 0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar)


def gaussian_log_prob(x: Array, mean: Array, logvar: Array) -> Array:
  """Elementwise log N(x; mean, exp(logvar)) = -1/2 (log 2pi + logvar + (x - mean)^2 / exp(logvar))."""
  return -0.5 * (LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))


def standard_normal_log_prob(z: Array) -> Array:
  """Elementwise log N(z; 0, 1) = -1/2 (log 2pi + z^2)."""
  return -0.5 * (LOG_2PI + jnp.square(z))


def reparameterize(key: Array, mean: Array, logvar: Array, num_samples: int = 1) -> Array:
  """Draws z_s = mean + exp(logvar / 2) * eps_s, eps_s ~ N(0, I): shape [num_samples, *mean.shape].

  The samples are differentiable in (mean, logvar) (the reparameterization trick, Kingma & Welling 2014).
  eps comes from `threefry.normal` (JAX's generator and transform, unrolled: cheaper on XLA:CPU).
  """
  eps = threefry.normal(key, (num_samples,) + tuple(jnp.shape(mean)), dtype=jnp.result_type(mean))
  return mean + jnp.exp(0.5 * logvar) * eps


def bernoulli_log_prob(x: Array, logits: Array) -> Array:
  """Elementwise log Bernoulli(x; sigmoid(logits)) for x in {0, 1} (for x in [0, 1]: minus the cross-entropy).

  x log s(l) + (1 - x) log(1 - s(l)) = x l - softplus(l), which is finite for any finite logit.
  """
  return x * logits - softplus(logits)


@jax.custom_jvp
def softplus(x: Array) -> Array:
  """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), stable for any finite x.

  Same values (to 6e-8 absolute) and derivative as `jax.nn.softplus`, cheaper: the derivative sigmoid(x)
  is formed from the forward's e^-|x| (one exponential per element in all), where `jax.nn.softplus`
  (logaddexp's JVP) computes a second one. log(1 + e) instead of log1p(e): XLA:CPU's log is vectorized, its
  log1p is not; rounding 1 + e costs at most 2^-24 absolute, 5e-5 nats over a 784-pixel image.
  """
  return jnp.maximum(x, 0) + jnp.log(1 + jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  e = jnp.exp(-jnp.abs(x))
  one_plus_e = 1 + e
  r = 1 / one_plus_e
  return jnp.maximum(x, 0) + jnp.log(one_plus_e), jnp.where(x >= 0, r, e * r) * t


def log_mean_exp(a: Array, axis: int | tuple[int, ...] | None = None) -> Array:
  """log( mean_i exp(a_i) ) along ``axis``, computed stably: logsumexp(a) - log n."""
  a = jnp.asarray(a)
  if axis is None:
    n = a.size
  else:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    n = math.prod(a.shape[ax] for ax in axes)
  return logsumexp(a, axis=axis) - math.log(n)


@jax.custom_jvp
def _log_ndtr(x: Array) -> Array:
  """log Phi(x), with the derivative phi(x) / Phi(x) = sqrt(2 / pi) / erfcx(-x / sqrt(2)) computed without cancellation.

  (jax's own log_ndtr differentiates as exp(log phi(x) - log Phi(x)), which in float32 is wrong by orders of
  magnitude below x ~ -1e3, where a badly placed decoder mean can put it.)
  """
  return log_ndtr(x)


@_log_ndtr.defjvp
def _log_ndtr_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return _log_ndtr(x), t * (math.sqrt(2.0 / math.pi) / erfcx(-x * math.sqrt(0.5)))


def _log1mexp(d: Array) -> Array:
  """log(1 - exp(d)) for d < 0 (Maechler 2012): log(-expm1(d)) near 0, log1p(-exp(d)) further out."""
  d = jnp.minimum(d, -1e-30)  # keeps the unused branch of a jnp.where finite (and its gradient)
  return jnp.where(d > -math.log(2.0), jnp.log(-jnp.expm1(d)), jnp.log1p(-jnp.exp(d)))


def _bin_edges(x: Array, num_bins: int) -> tuple[Array, Array, float]:
  """Masks of the lower and upper edge bins, and the bin half-width h = 1 / (2 (num_bins - 1))."""
  half_width = 0.5 / (num_bins - 1)
  return x < half_width, x > 1.0 - half_width, half_width


def discretized_logistic_log_prob(x: Array, mean: Array, log_scale: Array, num_bins: int = 256) -> Array:
  """Elementwise log-mass of the discretized logistic(mean, exp(log_scale)) at grid points x in [0, 1].

  With F = sigmoid((. - mean) / s), a = (x + h - mean) / s and b = (x - h - mean) / s:

    edge 0:    log F(x + h)      = log sigmoid(a)  = -softplus(-a)
    edge K-1:  log(1 - F(x - h)) = log sigmoid(-b) = -softplus(b)
    interior:  log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - exp(b - a))

  The interior identity holds exactly since sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)),
  and each term is stable (b - a = -2h / s depends on the scale only), so no fallback is needed: the
  result is accurate for any mean, including masses far below float32's smallest number.
  """
  is_low, is_high, h = _bin_edges(x, num_bins)
  inv_scale = jnp.exp(-log_scale)
  centred = x - mean
  a = (centred + h) * inv_scale
  b = (centred - h) * inv_scale
  log_cdf_plus = -jax.nn.softplus(-a)
  log_one_minus_cdf_min = -jax.nn.softplus(b)
  log_width_term = jnp.log(-jnp.expm1(-2.0 * h * inv_scale))
  interior = log_cdf_plus + log_one_minus_cdf_min + log_width_term
  return jnp.where(is_low, log_cdf_plus, jnp.where(is_high, log_one_minus_cdf_min, interior))


def discretized_gaussian_log_prob(x: Array, mean: Array, log_scale: Array, num_bins: int = 256) -> Array:
  """Elementwise log-mass of the discretized N(mean, exp(log_scale)^2) at grid points x in [0, 1].

  With Phi the standard normal CDF, a = (x + h - mean) / s, b = (x - h - mean) / s:

    edge 0:    log Phi(a)
    edge K-1:  log(1 - Phi(b)) = log Phi(-b)
    interior:  log(Phi(u) - Phi(l)) = log Phi(u) + log(1 - exp(log Phi(l) - log Phi(u)))

  where (u, l) = (a, b), or (-b, -a) when the bin lies above the mean (a + b > 0), so that both
  arguments sit in the lower tail where log_ndtr is accurate. When the bin is narrow relative to the
  scale and the distance to the mean, w (1 + |z|) < 0.25 with w = 2h / s and z = (x - mean) / s,
  the difference of log-CDFs loses digits to cancellation; there the midpoint rule with its Taylor
  corrections is used instead (the fallback to log density * bin width):

    log P(x) = log N(x; mean, s^2) + log(2h) + log(1 + (z^2 - 1) w^2 / 24 + (z^4 - 6 z^2 + 3) w^4 / 1920),

  from int_{-w/2}^{w/2} phi(z + t) dt = w phi(z) (1 + (z^2 - 1) w^2 / 24 + (z^4 - 6 z^2 + 3) w^4 / 1920 + O(w^6)).
  """
  is_low, is_high, h = _bin_edges(x, num_bins)
  inv_scale = jnp.exp(-log_scale)
  centred = x - mean
  a = (centred + h) * inv_scale
  b = (centred - h) * inv_scale
  flip = (a + b) > 0.0
  upper = jnp.where(flip, -b, a)
  lower = jnp.where(flip, -a, b)
  log_upper = _log_ndtr(upper)
  # Where this branch is selected |d| > 0.19 in exact arithmetic; the bound only keeps float32 garbage
  # at absurd |z| (where d can round to 0) from turning into an infinite gradient.
  exact = log_upper + _log1mexp(jnp.minimum(_log_ndtr(lower) - log_upper, -1e-2))
  z = centred * inv_scale
  width = 2.0 * h * inv_scale
  use_midpoint = width * (1.0 + jnp.abs(z)) < _GAUSSIAN_MIDPOINT_THRESHOLD
  # Inputs of the unused branch are zeroed so that neither it nor its gradient can overflow.
  zm, wm = jnp.where(use_midpoint, z, 0.0), jnp.where(use_midpoint, width, 0.0)
  z2, w2 = jnp.square(zm), jnp.square(wm)
  correction = jnp.log1p((z2 - 1.0) * w2 / 24.0 + (jnp.square(z2) - 6.0 * z2 + 3.0) * jnp.square(w2) / 1920.0)
  midpoint = -0.5 * (LOG_2PI + z2) - log_scale + math.log(2.0 * h) + correction
  interior = jnp.where(use_midpoint, midpoint, exact)
  return jnp.where(is_low, _log_ndtr(a), jnp.where(is_high, _log_ndtr(-b), interior))
