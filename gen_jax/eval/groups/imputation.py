"""Imputation: hide part of each test image, let the model fill it in, score the error on the hidden pixels.

Masks (bool [N, H, W, 1], True = MISSING; one mask covers every channel of a pixel):
  half     the bottom half of the rows (rows >= H // 2)
  centre   the centre rectangle of H // 2 x W // 2 pixels (a square for square images): a quarter of the image
  random   each pixel independently with probability 0.5, from a key

Fill-in methods (any number of images, `batch_size` at a time through one jitted function, no loop over pixels):
  latent optimization      (any family with a decoder) minimise over z, per image,
                             sum_{observed pixels} (G(z) - x)^2 + prior_weight * 0.5 ||z||^2
                           with Adam (cosine-decayed step size) from `restarts` prior draws; each restart gives one
                           imputation G(z) on the missing pixels ('bestfit': the restart with the lowest objective).
  conditional sampling     (encoder models) a Markov chain over z whose imputation is the decoder mean at the current z.
                           'mwg' (the default, eval.imputation_chain): Metropolis-within-Gibbs (Mattei & Frellsen
                           2018), a Metropolis-Hastings chain on p(z | x_obs) with the encoder as proposal: from
                           the fill x = (x_obs, decoder mean at z) propose z' ~ q(z | x); accept with probability
                             min(1, p(x_obs | z') p(z') q(z | x') / (p(x_obs | z) p(z) q(z' | x)))
                           (x' the fill of z'), so its draws follow p(z | x_obs) however wrong the encoder is.
                           'pseudo_gibbs' (Rezende et al. 2014): encode, draw z ~ q(z | x), decode, refill, always
                           accepted; it targets p(z | x_obs) only if the encoder were exact, and can drift.
                           'pcn': after the first draw from q, a preconditioned Crank-Nicolson random walk
                           z' = sqrt(1 - beta^2) z + beta eps (Cotter et al. 2013), reversible for the prior, so
                           accepted with probability min(1, p(x_obs | z') / p(x_obs | z)); its step size beta is
                           adapted per chain in the first half of the steps. Where the encoder's proposals are almost
                           never accepted (many observed pixels, a sharp likelihood), this chain still moves.
                           All three start with a draw z ~ q(z | the `init` fill). `evaluate_imputation` runs M
                           independent chains started at the latent-optimization restarts; a chain's imputation is
                           its last decoder mean.
  p(x_obs | z) in the acceptance: the pixel likelihood summed over the observed pixels and channels where the family
  has one (VAEs); else (VAE-GAN, test models) a Gaussian of variance PRIOR_WEIGHT / 2 around the decoder mean: the
  observation model whose MAP is latent optimization's objective (the objective is -PRIOR_WEIGHT x the log joint).
Both are sampling imputers: `evaluate_imputation` scores the mean of their M imputations per image (the
squared-error-optimal summary: a single imputation's error also holds the imputations' variance) and, beside it,
one imputation at a time.
Observed pixels always keep their given values, so a method's output differs from its input only where pixels miss.

The error is the mean squared error per missing pixel and channel, in [0, 1] units, pooled over all images
(sum of squared errors / number of missing values), against the test image in [0, 1]. For binarized datasets the
model sees its own input (`model_input`, thresholded at 0.5) at the observed pixels while the truth stays the grey
image: the decoder's mean is a pixel's probability of being on, whose best value under dynamic binarization is the
grey level itself. The baseline 'meanfill' fills the missing pixels with the mean training image.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import schema
from gen_jax.data import subsets
from gen_jax.errors import ConfigError, DatasetError
from gen_jax.eval.batching import map_batches
from gen_jax.eval.model_api import unit_images

MASK_KINDS = ("half", "centre", "random")
LEARNING_RATE = 0.1   # Adam's initial step size in latent optimization (z ~ N(0, I), so 0.1 is a small step)
PRIOR_WEIGHT = 0.1    # = 2 sigma^2: the Gaussian prior against pixel residuals of std sigma ~ 0.2 (NOTES.md, #19)
NUM_IMPUTATIONS = 8   # M: imputations per image of a sampling imputer (eval.imputation_samples)
CHAINS = schema.IMPUTATION_CHAINS   # conditional-sampling chains (eval.imputation_chain)
DEFAULT_CHAIN = "mwg"
# The 'pcn' chain's step size: per chain, from PCN_BETA_START adapted in the first half of the steps (then fixed, so
# the second half is an exact Metropolis-Hastings chain) towards PCN_TARGET_ACCEPT, the usual target of a random
# walk in many dimensions; never below PCN_BETA_MIN.
PCN_BETA_START, PCN_BETA_MIN, PCN_TARGET_ACCEPT, PCN_GAIN = 0.2, 1e-3, 0.25, 2.0


# --- masks (True = missing) ---------------------------------------------------------------------------------------
def half_mask(num: int, height: int, width: int) -> np.ndarray:
  """Bottom half missing: rows >= height // 2. bool [num, height, width, 1]."""
  rows = np.arange(height) >= height // 2
  return np.broadcast_to(rows[None, :, None, None], (num, height, width, 1)).copy()


def centre_mask(num: int, height: int, width: int) -> np.ndarray:
  """The centre (height // 2) x (width // 2) block missing. bool [num, height, width, 1]."""
  sh, sw = height // 2, width // 2
  top, left = (height - sh) // 2, (width - sw) // 2
  mask = np.zeros((num, height, width, 1), bool)
  mask[:, top:top + sh, left:left + sw] = True
  return mask


def random_mask(key: jax.Array, num: int, height: int, width: int, missing_prob: float = 0.5) -> np.ndarray:
  """Each pixel missing independently with probability ``missing_prob``. bool [num, height, width, 1]."""
  return np.asarray(jax.random.bernoulli(key, missing_prob, (num, height, width, 1)))


def make_mask(kind: str, key: jax.Array, num: int, height: int, width: int) -> np.ndarray:
  if kind == "half":
    return half_mask(num, height, width)
  if kind == "centre":
    return centre_mask(num, height, width)
  if kind == "random":
    return random_mask(key, num, height, width)
  raise ConfigError(f"unknown imputation mask {kind!r}; known: {MASK_KINDS}")


def missing_pixel_mse(imputed, truth, missing) -> float:
  """Sum of squared errors over missing values / number of missing values (pixels x channels); float64."""
  imputed, truth = np.asarray(imputed, np.float64), np.asarray(truth, np.float64)
  missing = np.broadcast_to(np.asarray(missing, bool), truth.shape)
  count = int(missing.sum())
  if count == 0:
    raise ValueError("missing_pixel_mse: the mask hides no pixel, so there is no error to measure")
  return float(np.sum(np.square(imputed - truth) * missing) / count)


# --- the model with its parameters as a traced argument ------------------------------------------------------------
def _bound(model: Any, models: Any) -> Any:
  """A shallow copy of ``model`` reading its parameters from ``models`` (tracers inside jit, not constants)."""
  if models is None:
    return model
  bound = copy.copy(model)
  bound.models = models
  return bound


def _example_keys(key: jax.Array, index: jax.Array) -> jax.Array:
  """One key per example from its index in the whole set, so results do not depend on the batch size."""
  return jax.vmap(jax.random.fold_in, (None, 0))(key, index)


# Latent-optimization steps per jitted call, unrolled at trace time. XLA:CPU runs the input gradient of a
# convolution several times slower inside a while loop than outside (NOTES.md, "Loops and convolutions"): 20 Adam
# steps of a DCGAN generator on 400 latents measured 15.6 s as a lax.scan and 2.9 s as two unrolled calls of 10.
CHUNK_STEPS = 10


class _LatentOptimizer:
  """The jitted pieces of latent optimization for one model: start, advance by `length` steps, finish."""

  def __init__(self, model: Any, steps: int, restarts: int, learning_rate: float, prior_weight: float):
    self.model, self.restarts, self.prior_weight = model, restarts, prior_weight
    self.tx = optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1)))
    self.start = jax.jit(self._start)
    self.advance = jax.jit(self._advance, static_argnums=0)
    self.finish = jax.jit(self._finish)

  def _objective(self, m, z, x_obs, observed, labels):
    """[n * restarts]: each row its own problem (rows repeat each image `restarts` times), so the summed gradient
    is per row."""
    r = self.restarts
    x_rep, obs_rep = jnp.repeat(x_obs, r, axis=0), jnp.repeat(observed, r, axis=0).astype(jnp.float32)
    fit = jnp.sum(obs_rep * jnp.square(m.decode(z, jnp.repeat(labels, r, axis=0)) - x_rep),
                  axis=tuple(range(1, x_obs.ndim)))
    return fit + self.prior_weight * 0.5 * jnp.sum(jnp.square(z), axis=-1)

  def _start(self, models, key, index):
    latent = int(_bound(self.model, models).latent_dim)
    keys = _example_keys(key, index)
    z = jax.vmap(lambda k: jax.random.normal(k, (self.restarts, latent)))(keys).reshape(-1, latent)
    return z, self.tx.init(z)

  def _advance(self, length, models, z, opt_state, x_obs, observed, labels):
    m = _bound(self.model, models)
    for _ in range(length):   # unrolled: see CHUNK_STEPS
      grads = jax.grad(lambda v: jnp.sum(self._objective(m, v, x_obs, observed, labels)))(z)
      updates, opt_state = self.tx.update(grads, opt_state, z)
      z = optax.apply_updates(z, updates)
    return z, opt_state

  def _finish(self, models, z, x_obs, observed, labels):
    """(the restart with the lowest objective [n, ...], every restart [n, restarts, ...]), observed pixels kept."""
    m = _bound(self.model, models)
    n, r = x_obs.shape[0], self.restarts
    decoded = m.decode(z, jnp.repeat(labels, r, axis=0)).reshape((n, r) + x_obs.shape[1:])
    fills = jnp.where(observed[:, None], x_obs[:, None], decoded)
    best = jnp.argmin(self._objective(m, z, x_obs, observed, labels).reshape(n, r), axis=1)
    return fills[jnp.arange(n), best], fills


@functools.lru_cache(maxsize=4)  # keeps the last few models alive; one compile per model
def _latent_optimizer(model: Any, steps: int, restarts: int, learning_rate: float, prior_weight: float):
  return _LatentOptimizer(model, steps, restarts, learning_rate, prior_weight)


def _check_chain(chain: str) -> str:
  if chain not in CHAINS:
    raise ConfigError(f"eval.imputation_chain={chain!r} is not a conditional-sampling chain; choose one of "
                      f"{', '.join(CHAINS)}")
  return chain


def _observation_model(m: Any, x_obs, observed, labels, log_lik: bool = True):
  """z -> (the fill: x_obs at observed pixels, the decoder mean elsewhere; log p(x_obs | z) [n] up to a constant,
  or zeros without ``log_lik``).

  The family's pixel likelihood where it has one (per-pixel terms masked: each pixel is scored as a 1x1 image of
  its own, which every likelihood of gen_jax/objectives/likelihoods.py factorizes over), else a Gaussian of
  variance PRIOR_WEIGHT / 2 around the decoder mean (see the module docstring)."""
  n = x_obs.shape[0]
  if not log_lik:
    return lambda z: (jnp.where(observed, x_obs, m.decode(z, labels)), jnp.zeros((n,), jnp.float32))
  weights = observed.reshape(n, -1).astype(jnp.float32)   # [n, H * W]
  family = getattr(m, "family", None)
  if getattr(m, "has_likelihood", False) and family is not None:
    lm = family.likelihood_model(m.models)
    pixels = x_obs.reshape((n, -1, 1, 1, x_obs.shape[-1]))

    def observe(z):
      out = lm.decode(z, labels)
      log_p = lm.likelihood.log_prob(pixels, out.reshape((n, -1, 1, 1, out.shape[-1])))   # [n, H * W]
      return jnp.where(observed, x_obs, lm.likelihood.mean(out)), jnp.sum(weights * log_p, axis=-1)
    return observe

  def observe_gaussian(z):
    mean = m.decode(z, labels)
    sq = jnp.sum(jnp.square(mean - x_obs), axis=-1).reshape(n, -1)
    return jnp.where(observed, x_obs, mean), -jnp.sum(weights * sq, axis=-1) / PRIOR_WEIGHT
  return observe_gaussian


def _log_q(z, mean, logvar):
  """log N(z; mean, diag exp(logvar)) [n], up to the constant that cancels in the acceptance ratio."""
  return -0.5 * jnp.sum(jnp.square(z - mean) * jnp.exp(-logvar) + logvar, axis=-1)


@functools.lru_cache(maxsize=4)  # keeps the last few models alive; one compile per model
def _conditional_sampler(model: Any, steps: int, average_last: int, chain: str):
  """The jitted chain: (models, key, index, x_obs, observed, labels, init) -> (imputation, acceptance rate [n]).

  The state is z with its fill and q(z | fill). The first draw, z ~ q(z | init fill), starts the chain and is always
  taken (as in the pseudo-Gibbs chain); the acceptance rate counts the later steps (NaN with steps = 1)."""

  def run(models, key, index, x_obs, observed, labels, init):
    m = _bound(model, models)
    keys = _example_keys(key, index)
    observe = _observation_model(m, x_obs, observed, labels, log_lik=chain != "pseudo_gibbs")
    fill = jnp.where(observed, x_obs, init)
    mean, logvar = m.encode(fill, labels)
    z, log_lik = jnp.zeros_like(mean), jnp.full(mean.shape[:1], -jnp.inf)   # no state yet: the first draw is taken
    log_beta = jnp.full(mean.shape[:1], jnp.log(PCN_BETA_START))            # pCN step size, per chain

    def step(carry, i):
      (z, fill, log_lik, mean, logvar), log_beta, total, accepted = carry
      step_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, i)
      eps = jax.vmap(lambda k: jax.random.normal(k, mean.shape[1:]))(step_keys)
      u = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1), ()))(step_keys)
      if chain == "pcn":   # after the first draw from q, z' = sqrt(1 - beta^2) z + beta eps: reversible for p(z)
        beta = jnp.exp(log_beta)[:, None]
        z_new = jnp.where(i == 0, mean + jnp.exp(0.5 * logvar) * eps, jnp.sqrt(1.0 - beta ** 2) * z + beta * eps)
      else:
        z_new = mean + jnp.exp(0.5 * logvar) * eps
      fill_new, log_lik_new = observe(z_new)
      if chain == "pcn":   # the encoder is only the first draw's proposal
        mean_new, logvar_new = mean, logvar
        log_ratio = log_lik_new - log_lik
      else:
        mean_new, logvar_new = m.encode(fill_new, labels)
        log_ratio = (log_lik_new - 0.5 * jnp.sum(jnp.square(z_new), -1) + _log_q(z, mean_new, logvar_new)
                     - log_lik + 0.5 * jnp.sum(jnp.square(z), -1) - _log_q(z_new, mean, logvar))
      log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
      if chain == "pseudo_gibbs":   # every draw is taken
        take = jnp.ones(z.shape[:1], bool)
      else:
        take = (i == 0) | (jnp.log(u) < log_ratio)
      if chain == "pcn":   # Robbins-Monro on log beta towards PCN_TARGET_ACCEPT, in the first half only
        alpha = jnp.exp(jnp.minimum(log_ratio, 0.0))
        adapt = (i > 0) & (i < steps // 2)
        log_beta = jnp.where(adapt, jnp.clip(log_beta + PCN_GAIN * (alpha - PCN_TARGET_ACCEPT) / jnp.sqrt(i + 1.0),
                                             jnp.log(PCN_BETA_MIN), 0.0), log_beta)
      state = jax.tree.map(lambda a, b: jnp.where(jnp.reshape(take, take.shape + (1,) * (a.ndim - 1)), a, b),
                           (z_new, fill_new, log_lik_new, mean_new, logvar_new), (z, fill, log_lik, mean, logvar))
      total = total + jnp.where(i >= steps - average_last, state[1], 0.0)
      return (state, log_beta, total, accepted + jnp.where(i > 0, take, False).astype(jnp.float32)), None

    carry = ((z, fill, log_lik, mean, logvar), log_beta, jnp.zeros_like(x_obs),
             jnp.zeros(x_obs.shape[:1], jnp.float32))
    (_, _, total, accepted), _ = jax.lax.scan(step, carry, jnp.arange(steps))
    rate = accepted / (steps - 1) if steps > 1 else jnp.full_like(accepted, jnp.nan)
    return jnp.where(observed, x_obs, total / average_last), rate

  return jax.jit(run)


def _prepare(model: Any, x, observed_mask, labels):
  x = np.asarray(x, np.float32)
  if x.ndim != 4:
    raise ValueError(f"imputation needs images [N, H, W, C]; got shape {x.shape}")
  observed = np.asarray(observed_mask, bool)
  observed = observed[..., None] if observed.ndim == 3 else observed
  if observed.shape != x.shape[:3] + (1,):
    raise ValueError(f"observed_mask must be [N, H, W, 1] or [N, H, W] for images {x.shape}; got {observed.shape}")
  if labels is None:
    if getattr(model, "conditional", False):
      raise ConfigError("imputation of a conditional model needs the images' labels; pass labels=")
    labels = np.zeros((x.shape[0],), np.int32)
  x_obs = np.asarray(model.model_input(x), np.float32)
  return x_obs, observed, np.asarray(labels, np.int32), np.arange(x.shape[0], dtype=np.int32)


def impute_latent_optimization(model: Any, x, observed_mask, key: jax.Array, steps: int, restarts: int = 4,
                               labels=None, learning_rate: float = LEARNING_RATE, prior_weight: float = PRIOR_WEIGHT,
                               batch_size: int = 128, progress: str | None = None, return_all: bool = False):
  """Fill the unobserved pixels of x [N, H, W, C] in [0, 1] by optimizing z (see the module docstring).

  observed_mask: bool [N, H, W, 1] (or [N, H, W]), True = observed. model: an `EvalModel`, or any object with its
  methods (decode, model_input, latent_dim, conditional) whose parameters live in ``.models``. Returns numpy
  [N, H, W, C]: the model input at observed pixels, G(z*) at missing ones (z* the restart with the lowest
  objective); with ``return_all`` also every restart's imputation, [N, restarts, H, W, C]. ``progress``: a
  progress-bar title (the bar counts optimizer steps over all batches), or None.
  """
  steps, restarts = int(steps), int(restarts)
  if steps < 1 or restarts < 1:
    raise ConfigError(f"latent optimization needs steps >= 1 and restarts >= 1; got {steps!r}, {restarts!r}")
  x_obs, observed, labels, index = _prepare(model, x, observed_mask, labels)
  opt = _latent_optimizer(model, steps, restarts, float(learning_rate), float(prior_weight))
  models = getattr(model, "models", None)
  chunks = [CHUNK_STEPS] * (steps // CHUNK_STEPS) + ([steps % CHUNK_STEPS] if steps % CHUNK_STEPS else [])
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=steps * -(-x_obs.shape[0] // max(1, min(int(batch_size), x_obs.shape[0]))), desc=progress,
               unit="step", leave=False)

  def batch(i, xo, ob, y):
    z, opt_state = opt.start(models, key, i)
    for length in chunks:
      z, opt_state = opt.advance(length, models, z, opt_state, xo, ob, y)
      if bar is not None:
        jax.block_until_ready(z)   # the bar shows finished steps, not dispatched ones
        bar.update(length)
    return opt.finish(models, z, xo, ob, y)

  try:
    best, every = map_batches(batch, index, x_obs, observed, labels, batch_size=batch_size)
    return (best, every) if return_all else best
  finally:
    if bar is not None:
      bar.close()


def impute_conditional_sampling(model: Any, x, observed_mask, key: jax.Array, steps: int, labels=None,
                                init=0.5, average_last: int | None = None, batch_size: int = 128,
                                chain: str = DEFAULT_CHAIN, return_acceptance: bool = False):
  """Fill the unobserved pixels of x [N, H, W, C] in [0, 1] by a conditional-sampling chain of an encoder model.

  chain: 'mwg' (Metropolis-within-Gibbs), 'pseudo_gibbs' or 'pcn' (see the module docstring). init: the starting
  value of missing pixels (a number or an image broadcastable to [H, W, C]); average_last: how many of the last steps'
  decoder means are averaged (default max(1, steps // 4)). Returns numpy [N, H, W, C]; with ``return_acceptance``
  also each chain's acceptance rate [N] (pseudo-Gibbs: 1).
  """
  _check_chain(chain)
  if not getattr(model, "has_encoder", False):
    raise ConfigError(f"conditional-sampling imputation needs an encoder; a {model.family_name} model has none. "
                      "Use impute_latent_optimization")
  steps = int(steps)
  if steps < 1:
    raise ConfigError(f"conditional sampling needs steps >= 1; got {steps!r}")
  average_last = max(1, steps // 4) if average_last is None else int(average_last)
  if not 1 <= average_last <= steps:
    raise ConfigError(f"average_last must be in [1, steps={steps}]; got {average_last!r}")
  x_obs, observed, labels, index = _prepare(model, x, observed_mask, labels)
  init = np.asarray(init, np.float32)
  fn = _conditional_sampler(model, steps, average_last, chain)
  models = getattr(model, "models", None)
  if init.ndim == x_obs.ndim:   # one starting image per example
    init = np.broadcast_to(init, x_obs.shape)
    out = map_batches(lambda i, xo, ob, y, s: fn(models, key, i, xo, ob, y, s), index, x_obs, observed, labels,
                      init, batch_size=batch_size)
  else:
    init = jnp.broadcast_to(jnp.asarray(init), x_obs.shape[1:])
    out = map_batches(lambda i, xo, ob, y: fn(models, key, i, xo, ob, y, init), index, x_obs, observed, labels,
                      batch_size=batch_size)
  return out if return_acceptance else out[0]


def conditional_sampling_draws(model: Any, x, observed_mask, key: jax.Array, steps: int, num_draws: int,
                               labels=None, init=0.5, batch_size: int = 128, chain: str = DEFAULT_CHAIN,
                               return_acceptance: bool = False):
  """``num_draws`` independent conditional-sampling chains per image, each one imputation (its last decoder mean):
  numpy [N, num_draws, H, W, C] (with ``return_acceptance`` also the chains' acceptance rates [N, num_draws]).
  Chain m uses the key fold_in(key, m), so draw m does not depend on num_draws."""
  init = np.asarray(init, np.float32)
  per_chain = init.ndim == 5   # [N, num_draws, H, W, C]: chain m of image i starts at init[i, m]
  runs = [impute_conditional_sampling(model, x, observed_mask, jax.random.fold_in(key, m), steps, labels,
                                      init[:, m] if per_chain else init, average_last=1, batch_size=batch_size,
                                      chain=chain, return_acceptance=True)
          for m in range(int(num_draws))]
  draws = np.stack([r[0] for r in runs], axis=1)
  return (draws, np.stack([r[1] for r in runs], axis=1)) if return_acceptance else draws


def score_draws(draws, truth, missing) -> dict[str, float]:
  """Scores of several imputations per image, draws [N, M, H, W, C]: 'persample' = the mean over m of the MSE of
  draw m (what one imputation scores on average), 'mean' = the MSE of the average of the M draws. Their difference
  is the draws' variance on the missing pixels (bias-variance split of the squared error), so 'mean' <= 'persample'
  and the average is the better fill under squared error."""
  draws = np.asarray(draws, np.float64)
  per = [missing_pixel_mse(draws[:, m], truth, missing) for m in range(draws.shape[1])]
  return {"persample": float(np.mean(per)), "mean": missing_pixel_mse(draws.mean(axis=1), truth, missing)}


def mean_training_image(train_images, data_shape) -> np.ndarray:
  """The mean of ``train_images`` (uint8 or [0, 1] floats, [N, H, W, C']) in [0, 1], broadcast to ``data_shape``
  [H, W, C] (Stacked MNIST: the MNIST mean in every channel, as its channels are independent MNIST digits)."""
  images = np.asarray(train_images)
  if images.ndim != 4 or images.shape[0] < 1:
    raise DatasetError(f"the mean training image needs training images [N >= 1, H, W, C]; got {images.shape}")
  mean = images.mean(axis=0, dtype=np.float64)
  if images.dtype == np.uint8:
    mean = mean / 255.0
  try:
    return np.broadcast_to(mean, tuple(data_shape)).astype(np.float32)
  except ValueError:
    raise DatasetError(f"training images {images.shape[1:]} do not fit the model's data shape {tuple(data_shape)}; "
                       "pass the training images of the model's dataset") from None


def evaluate_imputation(model: Any, test_images, test_labels, key: jax.Array, num_examples: int, steps: int,
                        batch_size: int, restarts: int | None = None, train_images=None, mean_image=None,
                        progress: bool = False, num_imputations: int = NUM_IMPUTATIONS,
                        subset_seed: int = 0, chain: str = DEFAULT_CHAIN) -> dict:
  """Imputation error of a model for each mask kind: {'metrics': {...}, 'protocol': {...}}.

  metrics per kind k in MASK_KINDS, for the model's own method (conditional sampling for encoder models, latent
  optimization for the rest), which makes ``num_imputations`` (M) imputations per image:
    'impute_mse_k'            the MSE of the mean of the M imputations (the model's number)
    'impute_mse_k_persample'  the mean MSE of one imputation
    'impute_mse_k_bestfit'    (latent optimization) the restart that fits the observed pixels best
    'impute_mse_k_latentopt'  (encoder models, to compare) latent optimization's mean of M
    'impute_mse_k_meanfill'   the mean training image: the trivial baseline a model must beat
    'impute_accept_k'         (encoder models, chain 'mwg') the chains' mean acceptance rate
  ``num_examples`` test images are a seeded class-balanced draw (gen_jax/data/subsets.py, seed ``subset_seed``,
  purpose 'imputation'); test_images uint8 or [0, 1] floats [N, H, W, C]; test_labels [N] or None (needed for
  conditional models, which impute given the true label). ``restarts``: latent optimization's restarts (default
  M; each restart is one of its imputations). The mean-fill image: ``mean_image`` [H, W, C] in [0, 1] if given,
  else the mean of ``train_images``, else the mean of the model's own training set. ``progress``: a bar over the
  latent-optimization steps of each mask (the slow part). ``chain``: the conditional-sampling chain
  (eval.imputation_chain, see the module docstring).
  """
  if not getattr(model, "is_image", True):
    raise ConfigError("imputation needs image data; this model's data is not images. Remove 'imputation' from "
                      "eval.suites for toy 2-D data")
  images = unit_images(test_images)
  if tuple(images.shape[1:]) != tuple(model.data_shape):
    raise DatasetError(f"evaluate_imputation: test images {images.shape[1:]} do not match the model's data shape "
                       f"{tuple(model.data_shape)}; pass images as the model sees them (e.g. stacked for "
                       "Stacked MNIST)")
  num = min(int(num_examples), images.shape[0])
  if num < 1:
    raise ConfigError(f"evaluate_imputation needs num_examples >= 1 (eval.imputation_examples); got {num_examples!r}")
  _check_chain(chain)
  m_draws = int(num_imputations)
  restarts = m_draws if restarts is None else int(restarts)
  if m_draws < 1 or restarts < 1:
    raise ConfigError(f"imputation needs num_imputations >= 1 (eval.imputation_samples) and restarts >= 1; got "
                      f"{num_imputations!r}, {restarts!r}")
  total = images.shape[0]
  labelled = test_labels is not None and len(np.unique(np.asarray(test_labels))) > 1
  idx = subsets.balanced_indices(np.asarray(test_labels) if test_labels is not None else total, num, subset_seed,
                                 "imputation")
  images = images[idx]
  labels = None if test_labels is None else np.asarray(test_labels, np.int32)[idx]
  if mean_image is None:
    if train_images is None:
      dataset = getattr(model, "dataset", None)
      if dataset is None:
        raise DatasetError("evaluate_imputation needs the mean training image: the model carries no dataset; "
                           "pass train_images= or mean_image=")
      train_images = dataset.train.images
    mean_image = mean_training_image(train_images, images.shape[1:])
  mean = np.broadcast_to(np.asarray(mean_image, np.float32), images.shape[1:])
  h, w = images.shape[1:3]
  metrics: dict[str, float] = {}
  missing_fraction: dict[str, float] = {}
  for i, kind in enumerate(MASK_KINDS):
    k_mask, k_opt, k_gibbs = jax.random.split(jax.random.fold_in(key, i), 3)
    missing = make_mask(kind, k_mask, num, h, w)
    missing_fraction[kind] = float(missing.mean())
    metrics[f"impute_mse_{kind}_meanfill"] = missing_pixel_mse(np.broadcast_to(mean, images.shape), images, missing)
    best, every = impute_latent_optimization(
        model, images, ~missing, k_opt, steps, restarts, labels, batch_size=batch_size, return_all=True,
        progress=f"imputation ({kind}): latent optimization" if progress else None)
    opt = score_draws(every, images, missing)
    if model.has_encoder:
      # Chain m starts at latent optimization's restart m (mod restarts): the chains mix slowly, and from the mean
      # image their draws stay biased (NOTES.md, #19); from fits of the observed pixels they do not.
      starts = every[:, np.arange(m_draws) % restarts]
      draws, accept = conditional_sampling_draws(model, images, ~missing, k_gibbs, steps, m_draws, labels,
                                                 init=starts, batch_size=batch_size, chain=chain,
                                                 return_acceptance=True)
      gibbs = score_draws(draws, images, missing)
      if chain != "pseudo_gibbs":
        metrics[f"impute_accept_{kind}"] = float(np.mean(accept))
      metrics[f"impute_mse_{kind}"] = gibbs["mean"]
      metrics[f"impute_mse_{kind}_persample"] = gibbs["persample"]
      metrics[f"impute_mse_{kind}_latentopt"] = opt["mean"]
    else:
      metrics[f"impute_mse_{kind}"] = opt["mean"]
      metrics[f"impute_mse_{kind}_persample"] = opt["persample"]
      metrics[f"impute_mse_{kind}_bestfit"] = missing_pixel_mse(best, images, missing)
  method = f"conditional sampling ({chain})" if model.has_encoder else "latent optimization"
  protocol = {
      "metric": "mean squared error per missing pixel and channel, [0, 1] units, pooled over the images, against "
                "the grey test image; observed pixels are given to the model as model_input(x) (binarized data "
                "thresholded at 0.5)",
      "family": getattr(model, "family_name", "?"), "params_kind": getattr(model, "params_kind", "?"),
      "split": "test", "num_examples": num,
      "images": "test split: " + subsets.describe_subset(num, total, subset_seed, "imputation", labelled),
      "masks": {"half": "rows >= H // 2 missing", "centre": "centre (H // 2) x (W // 2) block missing",
                "random": "each pixel missing with probability 0.5"},
      "missing_fraction": missing_fraction,
      "impute_mse_<kind>": f"{method}: MSE of the mean of {m_draws if model.has_encoder else restarts} imputations "
                           "per image (the squared-error-optimal summary of a sampling imputer)",
      "impute_mse_<kind>_persample": f"{method}: mean MSE of a single imputation (includes the imputations' "
                                     "variance)",
      "num_imputations": m_draws if model.has_encoder else restarts, "steps": int(steps),
      "latent_optimization": f"Adam (lr {LEARNING_RATE}, cosine decay to 0) on sum_observed (G(z) - x)^2 + "
                             f"{PRIOR_WEIGHT} * 0.5 ||z||^2 from {restarts} prior draws (restarts), each restart one "
                             "imputation" + ("" if model.has_encoder else "; impute_mse_<kind>_bestfit: the restart "
                                             "with the lowest objective"),
      "meanfill": "the mean training image at the missing pixels: the trivial baseline (a model that does not beat "
                  "it is marked in reports, gen_jax/report/ranking.py)",
      "key_data": np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                             else key).ravel().tolist(),
  }
  if model.has_encoder:
    starts = (f"{m_draws} independent chains per image: chain m's missing pixels start at latent optimization's "
              f"restart m mod {restarts}, its first z ~ q(z | that fill); ")
    family = getattr(model, "family", None)
    observation = ("the model's pixel likelihood on the observed pixels" if getattr(model, "has_likelihood", False)
                   and family is not None else f"N(decoder mean, {PRIOR_WEIGHT / 2:g}) per observed pixel and "
                   "channel (the observation model of latent optimization's objective)")
    if chain == "pcn":
      protocol["conditional_sampling"] = (
          "preconditioned Crank-Nicolson Metropolis-Hastings (Cotter et al. 2013): " + starts + f"then "
          f"{int(steps) - 1} x (propose z' = sqrt(1 - beta^2) z + beta eps, accept with probability min(1, "
          "p(x_obs|z') / p(x_obs|z))), beta per chain from " + f"{PCN_BETA_START:g} adapted towards acceptance "
          f"{PCN_TARGET_ACCEPT:g} in the first {int(steps) // 2} steps, then fixed; p(x_obs | z): " + observation
          + "; a chain's imputation is the decoder mean at its last z")
      protocol["impute_accept_<kind>"] = "mean acceptance rate of the chains' Metropolis-Hastings steps"
    elif chain == "mwg":
      protocol["conditional_sampling"] = (
          "Metropolis-within-Gibbs (Mattei & Frellsen 2018): " + starts + f"then {int(steps) - 1} x (propose "
          "z' ~ q(z | x) for the fill x of the current z, accept with probability min(1, p(x_obs|z') p(z') q(z|x') "
          "/ (p(x_obs|z) p(z) q(z'|x))), x' the fill of z'); p(x_obs | z): " + observation + "; a chain's "
          "imputation is the decoder mean at its last z")
      protocol["impute_accept_<kind>"] = "mean acceptance rate of the chains' Metropolis-Hastings steps"
    else:
      protocol["conditional_sampling"] = (
          "pseudo-Gibbs (Rezende et al. 2014), " + starts + f"then {int(steps) - 1} x (encode, z ~ q(z|x), decode, "
          "refill), every draw taken; a chain's imputation is its last decoder mean")
    protocol["imputation_chain"] = chain
    protocol["impute_mse_<kind>_latentopt"] = f"latent optimization: MSE of the mean of its {restarts} restarts"
  if getattr(model, "conditional", False):
    protocol["labels"] = "the true test label"
  return {"metrics": metrics, "protocol": protocol}
