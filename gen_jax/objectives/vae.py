"""VAE training objectives: the (beta-, warmed-up, free-bits) ELBO and the IWAE bound.

Model contract
--------------
  encode_fn(x, y) -> (mean, logvar), each [B, L]: the Gaussian posterior q(z | x, y) = N(mean, diag exp(logvar)).
  decode_fn(z, y) -> out [N, H, W, C * P]: the parameters of p(x | z, y) for ``likelihood``; z [N, L], y [N] or None.
x is [B, H, W, C] float32 in [0, 1] (already binarized for the Bernoulli likelihood), y [B] int32 or None.
The prior is p(z) = N(0, I). K posterior samples are decoded in one call, laid out sample-major:
row k * B + b holds z_k for example b (so labels are tiled K times).

Objectives (per example, in nats)
---------------------------------
  ELBO(x)     = E_q[log p(x | z)] - KL(q(z | x) || p(z))                      (KL in closed form)
  IWAE_K(x)   = E[ log (1/K) sum_k w_k ],  log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)
with ELBO = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x) (Burda et al. 2015).

Gradient estimators of the IWAE bound (``gradient``)
----------------------------------------------------
  'reparam'  the reparameterized gradient of the bound itself (Burda et al.).
  'dreg'     doubly reparameterized (Tucker, Lawson, Gu, Maddison 2019): the same decoder gradient,
             sum_k w~_k d log w_k / d theta with w~ = softmax_k(log w), and for the encoder
             sum_k w~_k^2 (d log w_k / d z_k)(d z_k / d phi) with q's parameters held fixed inside log q.
             Unbiased for the same expectation; with q equal to the true posterior it is exactly zero, and
             near it its variance is a fraction of the reparameterized encoder gradient's, whose
             signal-to-noise ratio decays with K (Rainforth et al. 2018). Far from the posterior it can be
             the noisier one (tests/test_dreg.py). Costs one more decoder forward pass per step.
"""
import math
import numbers
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from gen_jax.objectives import distributions
from gen_jax.objectives.likelihoods import Likelihood, bits_per_dim

Array = jax.Array
EncodeFn = Callable[[Array, Array | None], tuple[Array, Array]]
DecodeFn = Callable[[Array, Array | None], Array]

OBJECTIVES = ("elbo", "iwae")
GRADIENT_ESTIMATORS = ("reparam", "dreg")


def kl_weight(step: Array | int, beta: float, warmup_steps: int) -> Array:
  """KL weight w(step) = beta * min(1, step / warmup_steps): a linear warm-up from 0 to beta.

  ``warmup_steps`` <= 0 gives beta at every step. ``step`` may be traced.
  """
  beta = jnp.asarray(beta, jnp.float32)
  if warmup_steps <= 0:
    return beta
  frac = jnp.asarray(step, jnp.float32) / float(warmup_steps)
  return beta * jnp.clip(frac, 0.0, 1.0)


def decode_samples(decode_fn: DecodeFn, z: Array, y: Array | None) -> Array:
  """Decodes z [K, B, L] in one call: returns out [K, B, H, W, C * P] (labels y [B] tiled K times)."""
  num_samples, batch = z.shape[:2]
  y_rep = None if y is None else jnp.tile(y, num_samples)
  out = decode_fn(z.reshape((num_samples * batch,) + z.shape[2:]), y_rep)
  return out.reshape((num_samples, batch) + out.shape[1:])


def log_importance_weights_from_posterior(
    decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None,
    mean: Array, logvar: Array, key: Array, num_samples: int) -> tuple[Array, Array]:
  """Samples z_k ~ q = N(mean, exp(logvar)) and returns (log w, log p(x | z)), each [K, B].

  log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x), summed over pixels and latent dimensions.
  """
  z = distributions.reparameterize(key, mean, logvar, num_samples)  # [K, B, L]
  return log_importance_weights(decode_fn, likelihood, x, y, z, mean, logvar)


def log_importance_weights(
    decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None,
    z: Array, mean: Array, logvar: Array) -> tuple[Array, Array]:
  """(log w, log p(x | z)), each [K, B], at given samples z [K, B, L] of q = N(mean, exp(logvar))."""
  out = decode_samples(decode_fn, z, y)
  log_px_z = likelihood.log_prob(x[None], out)  # [K, B]
  log_pz = jnp.sum(distributions.standard_normal_log_prob(z), axis=-1)
  log_qz = jnp.sum(distributions.gaussian_log_prob(z, mean, logvar), axis=-1)
  return log_px_z + log_pz - log_qz, log_px_z


def dreg_log_importance_weights(
    decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None,
    mean: Array, logvar: Array, key: Array, num_samples: int) -> tuple[Array, Array, Array]:
  """(log w, log p(x | z), surrogate) for the doubly reparameterized IWAE gradient; log w, log p(x | z) [K, B].

  The values equal `log_importance_weights_from_posterior`'s for the same key. `surrogate` [B] has the value
  sum_k w~_k log w_k and the DReG gradient: each z_k enters the decoder as sg(z_k) + w~_k (z_k - sg(z_k)), so
  the path through z_k to the encoder carries one more factor w~_k than the path to the decoder, and log q
  is evaluated at sg(mean), sg(logvar) so that the encoder gets no score-function term. w~ is
  softmax_k(log w) from a forward pass without gradients.
  """
  sg = jax.lax.stop_gradient
  z = distributions.reparameterize(key, mean, logvar, num_samples)  # [K, B, L]
  log_weights = lambda z_in: log_importance_weights(decode_fn, likelihood, x, y, z_in, sg(mean), sg(logvar))  # noqa: E731
  weights = jax.nn.softmax(sg(log_weights(sg(z))[0]), axis=0)  # w~ [K, B]
  z_scaled = sg(z) + weights[..., None] * (z - sg(z))           # value z, d/d phi scaled by w~
  log_w, log_px_z = log_weights(z_scaled)
  surrogate = jnp.sum(weights * log_w, axis=0)
  return log_w, log_px_z, surrogate


def vae_loss(
    encode_fn: EncodeFn, decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None, key: Array, *,
    step: Array | int, objective: str = "elbo", num_samples: int = 1, beta: float = 1.0,
    kl_warmup_steps: int = 0, free_bits: float = 0.0, gradient: str = "reparam") -> tuple[Array, dict[str, Array]]:
  """The VAE loss to minimise (a scalar, mean over the batch) and per-example-mean metrics in nats.

  'elbo': loss = -(1/B) sum_b [ (1/K) sum_k log p(x_b | z_bk) ] + w(step) * KL_loss, with K = num_samples
    reparameterized samples, w = ``kl_weight(step, beta, kl_warmup_steps)`` and the analytic KL.
    Without free bits KL_loss = (1/B) sum_b sum_j KL_bj; with free bits lambda (Kingma et al. 2016)
    KL_loss = sum_j max(lambda, (1/B) sum_b KL_bj), which stops pushing latent j below lambda nats.
  'iwae': loss = -(1/B) sum_b [ logsumexp_k log w_bk - log K ] (Burda et al. 2015); beta, warm-up and
    free bits do not apply (config.validate_config refuses them at start-up, with the choice of objective and
    estimator). With gradient='dreg' the loss has the same value and the doubly reparameterized gradient
    (`dreg_log_importance_weights`).

  Metrics (means over the batch, nats; 'kl' is the true, positive KL whatever the loss uses):
  'loss', 'elbo', 'recon_log_prob' (E_q log p(x | z)), 'kl', 'kl_weight', 'bits_per_dim'
  (from -elbo for 'elbo', from -iwae_bound for 'iwae') and, for 'iwae', 'iwae_bound'.
  """
  mean, logvar = encode_fn(x, y)
  num_dims = x.shape[1] * x.shape[2] * x.shape[3]
  kl_per_dim = distributions.gaussian_kl_to_standard(mean, logvar)  # [B, L]
  kl = jnp.sum(kl_per_dim, axis=-1)  # [B]

  if gradient == "dreg":
    log_w, log_px_z, surrogate = dreg_log_importance_weights(
        decode_fn, likelihood, x, y, mean, logvar, key, num_samples)
  else:
    log_w, log_px_z = log_importance_weights_from_posterior(
        decode_fn, likelihood, x, y, mean, logvar, key, num_samples)
  recon = jnp.mean(log_px_z, axis=0)  # [B]
  elbo = recon - kl
  metrics = {
      "elbo": jnp.mean(elbo),
      "recon_log_prob": jnp.mean(recon),
      "kl": jnp.mean(kl),
  }
  if objective == "elbo":
    weight = kl_weight(step, beta, kl_warmup_steps)
    if isinstance(free_bits, numbers.Real) and free_bits == 0:
      kl_loss = metrics["kl"]  # no jnp.maximum: its tie gradient would halve d KL at a posterior equal to the prior
    else:
      kl_loss = jnp.sum(jnp.maximum(free_bits, jnp.mean(kl_per_dim, axis=0)))
    loss = -metrics["recon_log_prob"] + weight * kl_loss
    metrics["bits_per_dim"] = bits_per_dim(-metrics["elbo"], num_dims)
  else:
    weight = jnp.ones((), jnp.float32)
    iwae = jnp.mean(logsumexp(log_w, axis=0) - math.log(num_samples))
    loss = -iwae
    if gradient == "dreg":  # the value of -iwae, the gradient of -mean_b surrogate
      surrogate = jnp.mean(surrogate)
      loss = jax.lax.stop_gradient(loss) - (surrogate - jax.lax.stop_gradient(surrogate))
    metrics["iwae_bound"] = iwae
    metrics["bits_per_dim"] = bits_per_dim(-iwae, num_dims)
  metrics["loss"] = loss
  metrics["kl_weight"] = weight
  return loss, metrics
