"""GAN objectives as functions of discriminator logits / critic scores, gradient penalties and health metrics.

Conventions
-----------
Every loss takes the discriminator's raw outputs, one per example: ``real_logits`` f(x) [N] on data and
``fake_logits`` f(G(z)) [N] on generated samples (any shape works; every element counts as one example and the
losses are means over all elements). For the two classifier losses ('minimax', 'nonsaturating') f is a logit
and D = sigmoid(f) is the probability that the input is real; for the others f is an unbounded score.
Both the discriminator and the generator MINIMISE the value their function returns.

All log-probabilities go through softplus / log-sigmoid, never log(sigmoid(f)):
  log D       = log sigmoid(f)  = -softplus(-f)
  log (1 - D) = log sigmoid(-f) = -softplus(f)
so the losses stay finite (and linear, with gradient of magnitude 1) at logits of +-100 and beyond.

Losses (D: discriminator / critic, G: generator; E over the batch)
------------------------------------------------------------------
  'minimax'       (Goodfellow et al. 2014)
      D: -E[log D(x)] - E[log(1 - D(G(z)))]  = E[softplus(-f(x))] + E[softplus(f(G(z)))]
      G:  E[log(1 - D(G(z)))]                = -E[softplus(f(G(z)))]          (saturating)
  'nonsaturating' (Goodfellow et al. 2014, Sec. 3)
      D: as 'minimax'
      G: -E[log D(G(z))]                     = E[softplus(-f(G(z)))]
  'wasserstein'   (Arjovsky et al. 2017; pair with clip_weights or gradient_penalty)
      D:  E[f(G(z))] - E[f(x)]
      G: -E[f(G(z))]
  'hinge'         (Lim & Ye 2017; Miyato et al. 2018)
      D:  E[relu(1 - f(x))] + E[relu(1 + f(G(z)))]
      G: -E[f(G(z))]
  'lsgan'         (Mao et al. 2017, targets a = 0 (fake), b = 1 (real), c = 1 (what G wants))
      D: 1/2 E[(f(x) - 1)^2] + 1/2 E[f(G(z))^2]
      G: 1/2 E[(f(G(z)) - 1)^2]

At D = 1/2 everywhere (logits 0) the minimax / non-saturating discriminator loss equals 2 log 2, its value at the
equilibrium p_g = p_data (Goodfellow et al. 2014, Theorem 1).

Penalties
---------
  gradient_penalty (WGAN-GP, Gulrajani et al. 2017):  E[(||grad_x f(x_hat)||_2 - target)^2],
      x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] drawn once per example.
  r1_penalty (Mescheder et al. 2018):                 E_x[||grad_x f(x)||_2^2]   (the caller scales by gamma / 2)
Both norms run over each WHOLE example (all pixels and channels, every non-batch axis) -- not per channel or per
pixel, the bug of PyTorch-GAN issue #20 (eriklindernoren/PyTorch-GAN).
"""
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError

Array = jax.Array
CriticFn = Callable[[Array], Array]

GAN_LOSSES = ("minimax", "nonsaturating", "wasserstein", "hinge", "lsgan")


def check_loss_kind(kind: str) -> None:
  """Raises ConfigError unless ``kind`` is one of GAN_LOSSES."""
  if kind not in GAN_LOSSES:
    raise ConfigError(f"unknown config.gan.loss {kind!r}; valid losses: {', '.join(map(repr, GAN_LOSSES))}")


def discriminator_loss(kind: str, real_logits: Array, fake_logits: Array) -> Array:
  """The discriminator's (critic's) loss, a scalar to minimise; see the module docstring for each ``kind``."""
  check_loss_kind(kind)
  real = jnp.asarray(real_logits)
  fake = jnp.asarray(fake_logits)
  if kind in ("minimax", "nonsaturating"):
    # -log D(x) = softplus(-f(x)),  -log(1 - D(G(z))) = softplus(f(G(z))).
    return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
  if kind == "wasserstein":
    return jnp.mean(fake) - jnp.mean(real)
  if kind == "hinge":
    return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
  # lsgan
  return 0.5 * jnp.mean(jnp.square(real - 1.0)) + 0.5 * jnp.mean(jnp.square(fake))


def generator_loss(kind: str, fake_logits: Array) -> Array:
  """The generator's loss, a scalar to minimise; see the module docstring for each ``kind``.

  'minimax' is the saturating E[log(1 - D(G(z)))] = -E[softplus(f)], whose gradient vanishes when D confidently
  rejects the samples (f -> -inf); 'nonsaturating' is -E[log D(G(z))] = E[softplus(-f)].
  """
  check_loss_kind(kind)
  fake = jnp.asarray(fake_logits)
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake))
  if kind == "nonsaturating":
    return jnp.mean(jax.nn.softplus(-fake))
  if kind in ("wasserstein", "hinge"):
    return -jnp.mean(fake)
  # lsgan
  return 0.5 * jnp.mean(jnp.square(fake - 1.0))


def _safe_norm(sq: Array) -> Array:
  """sqrt(sq) with a zero (not NaN) gradient at sq = 0 (the double-where trick)."""
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def per_example_input_grads(critic_fn: CriticFn, x: Array) -> Array:
  """grad_x f(x)_n for every example n, shape [N, ...] like x.

  Computed as grad_x sum_n f(x)_n, which equals the per-example gradients ONLY IF example n's score depends on
  example n alone. The critic must not mix examples: no batch norm in training mode (batch statistics), no
  minibatch-discrimination / minibatch-stddev layers, no attention across the batch. Layer / instance / group
  norm, spectral norm and batch norm with frozen statistics are fine.
  """
  return jax.grad(lambda xs: jnp.sum(critic_fn(xs)))(x)


def _per_example_sq_norm(g: Array) -> Array:
  """||g_n||_2^2 over each WHOLE example: the sum over every non-batch axis. [N, ...] -> [N]."""
  return jnp.sum(jnp.square(g), axis=tuple(range(1, g.ndim)))


def gradient_penalty(critic_fn: CriticFn, real: Array, fake: Array, key: Array,
                     target: float = 1.0) -> tuple[Array, Array]:
  """The WGAN-GP penalty (Gulrajani et al. 2017, Algorithm 1) and the per-example gradient norms.

    x_hat_n = eps_n real_n + (1 - eps_n) fake_n,   eps_n ~ U[0, 1] (one draw per example, shape [N, 1, 1, ...])
    penalty = (1/N) sum_n (||grad_x f(x_hat_n)||_2 - target)^2

  The norm is over the whole example (all pixels and channels). ``critic_fn`` maps a batch [N, ...] to scores [N]
  and must not mix examples (see ``per_example_input_grads``); close it over the critic's parameters to
  differentiate the penalty with respect to them (the second-order gradient flows through jax.grad). The caller
  multiplies by lambda (10 in the paper) and usually feeds a ``fake`` under jax.lax.stop_gradient.

  Returns (penalty scalar, grad_norms [N]).
  """
  real = jnp.asarray(real)
  fake = jnp.asarray(fake)
  if real.shape != fake.shape:
    raise ValueError(f"gradient_penalty needs real and fake batches of one shape; got {real.shape} and {fake.shape}")
  dtype = jnp.result_type(real.dtype, fake.dtype, jnp.float32)
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), dtype=dtype)
  x_hat = eps * real + (1.0 - eps) * fake
  grads = per_example_input_grads(critic_fn, x_hat)
  norms = _safe_norm(_per_example_sq_norm(grads))
  penalty = jnp.mean(jnp.square(norms - target))
  return penalty, norms


def r1_penalty(critic_fn: CriticFn, real: Array) -> Array:
  """The R1 penalty (Mescheder et al. 2018, eq. 9 without gamma / 2): (1/N) sum_n ||grad_x f(x_n)||_2^2 on data.

  The squared norm is over the whole example; no square root, so it is smooth at zero gradient. ``critic_fn`` must
  not mix examples (see ``per_example_input_grads``). The regularised critic loss is d_loss + gamma / 2 * r1.
  """
  grads = per_example_input_grads(critic_fn, jnp.asarray(real))
  return jnp.mean(_per_example_sq_norm(grads))


def clip_weights(params: Any, clip_value: float) -> Any:
  """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1): every floating leaf clipped to [-c, c].

  Non-floating leaves (integer counters, say) are returned unchanged. Apply after each critic update.
  """
  if isinstance(clip_value, numbers.Real) and not clip_value > 0:
    raise ConfigError(f"config.gan.clip_value must be > 0 (0.01 in Arjovsky et al. 2017); got {clip_value!r}")

  def clip(leaf):
    leaf = jnp.asarray(leaf)
    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
      return leaf
    return jnp.clip(leaf, -clip_value, clip_value).astype(leaf.dtype)

  return jax.tree.map(clip, params)


def d_output_stats(kind: str, real_logits: Array, fake_logits: Array) -> dict[str, Array]:
  """Mean discriminator outputs on real and fake data, for logging.

  'minimax' / 'nonsaturating': d_real = E[sigmoid(f(x))], d_fake = E[sigmoid(f(G(z)))], probabilities in [0, 1]
  (an equilibrium has both near 1/2; d_real -> 1, d_fake -> 0 means D wins). Other losses: the mean raw scores
  E[f(x)] and E[f(G(z))] (for 'wasserstein', d_real - d_fake is the critic's estimate of the Wasserstein-1
  distance, scaled by its Lipschitz constant).
  """
  check_loss_kind(kind)
  real = jnp.asarray(real_logits)
  fake = jnp.asarray(fake_logits)
  if kind in ("minimax", "nonsaturating"):
    real, fake = jax.nn.sigmoid(real), jax.nn.sigmoid(fake)
  return {"d_real": jnp.mean(real), "d_fake": jnp.mean(fake)}


def _mean_pairwise_distance(x: Array) -> Array:
  """(1 / (N (N - 1))) sum_{i != j} ||x_i - x_j||_2 over flattened examples x [N, ...], N >= 2.

  Uses ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b on batch-centred data (distances are translation invariant and
  centring limits the cancellation), clamped at 0. O(N^2 D) time, O(N^2 + N D) memory.
  """
  n = x.shape[0]
  if n < 2:
    raise ValueError(f"sample_diversity needs at least 2 examples per batch; got {n}")
  flat = jnp.reshape(x, (n, -1)).astype(jnp.float32)
  flat = flat - jnp.mean(flat, axis=0, keepdims=True)
  sq = jnp.sum(jnp.square(flat), axis=1)
  gram = flat @ flat.T
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
  d2 = jnp.where(jnp.eye(n, dtype=bool), 0.0, d2)
  return jnp.sum(_safe_norm(d2)) / (n * (n - 1))


def sample_diversity(fake: Array, real: Array) -> Array:
  """A cheap mode-collapse indicator: mean pairwise L2 distance within the generated batch over that of real data.

    diversity = mean_{i != j} ||G(z_i) - G(z_j)|| / mean_{i != j} ||x_i - x_j||     (examples flattened)

  About 1 when the generated batch is as spread out as data, -> 0 as the generator collapses onto few outputs
  (it cannot see a generator that covers few modes with well-spread samples; use gen_jax.eval.metrics.modes for that).
  The batches may differ in size (each needs N >= 2). A real batch of identical examples gives a huge value
  (the denominator is floored at 1e-12).
  """
  return _mean_pairwise_distance(jnp.asarray(fake)) / jnp.maximum(_mean_pairwise_distance(jnp.asarray(real)), 1e-12)
