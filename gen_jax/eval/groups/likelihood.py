"""Likelihood evaluation of latent-variable models with an amortized Gaussian encoder.

The importance-sampled estimate of Burda et al. (2015),

  log p(x) ~= log (1/K) sum_k w_k,   w_k = p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x),

is a stochastically lower-bounded, consistent estimator of log p(x) (its expectation is IWAE_K, which
increases to log p(x) as K grows). It is accumulated over chunks of samples with a running
(max, sum of exp) logsumexp, so memory does not grow with K.

The model contract is the one of ``gen_jax.objectives.vae``: encode_fn(x, y) -> (mean, logvar) [B, L],
decode_fn(z, y) -> out [N, H, W, C * P]; ``likelihood`` is any object with ``log_prob(x, out)`` summed over
the last 3 axes and ``mean(out)``.

``evaluate_likelihood_group`` is the suite's 'likelihood' group for any model family: the full set above for a
family with a pixel likelihood (capabilities.has_likelihood), the reconstruction error of the posterior mean for
one with an encoder only (capabilities.has_encoder).
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import subsets
from gen_jax.eval import metric_specs
from gen_jax.errors import ConfigError
from gen_jax.eval.placement import LEFT_TO_JIT, Placement
from gen_jax.objectives import distributions
from gen_jax.objectives.likelihoods import Likelihood, bits_per_dim
from gen_jax.objectives.vae import DecodeFn, EncodeFn, log_importance_weights_from_posterior

Array = jax.Array

BINARIZATIONS = ("none", "dynamic", "fixed")


def importance_log_weights(
    encode_fn: EncodeFn, decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None, key: Array,
    num_samples: int) -> Array:
  """log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x) for z_k ~ q(z | x): shape [num_samples, B]."""
  mean, logvar = encode_fn(x, y)
  log_w, _ = log_importance_weights_from_posterior(decode_fn, likelihood, x, y, mean, logvar, key, num_samples)
  return log_w


def importance_sampled_log_likelihood_from_posterior(
    decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None, mean: Array, logvar: Array,
    key: Array, *, num_samples: int, chunk_size: int) -> Array:
  """log (1/K) sum_k w_k [B] with proposal q = N(mean, exp(logvar)); see ``importance_sampled_log_likelihood``."""
  if num_samples < 1 or chunk_size < 1:
    raise ConfigError(f"importance sampling needs num_samples >= 1 and config.eval.chunk_size >= 1; "
                      f"got {num_samples} and {chunk_size}")
  chunk_size = min(chunk_size, num_samples)
  num_chunks = -(-num_samples // chunk_size)
  batch = x.shape[0]

  def body(carry, chunk_index):
    running_max, running_sum = carry  # [B], [B]: sum_k exp(log w_k - running_max) so far
    log_w, _ = log_importance_weights_from_posterior(
        decode_fn, likelihood, x, y, mean, logvar, jax.random.fold_in(key, chunk_index), chunk_size)
    valid = chunk_index * chunk_size + jnp.arange(chunk_size) < num_samples  # masks the tail of the last chunk
    log_w = jnp.where(valid[:, None], log_w, -jnp.inf)
    new_max = jnp.maximum(running_max, jnp.max(log_w, axis=0))
    safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0.0)
    running_sum = running_sum * jnp.exp(running_max - safe_max) + jnp.sum(jnp.exp(log_w - safe_max), axis=0)
    return (safe_max, running_sum), None

  dtype = jnp.result_type(mean)
  init = (jnp.full((batch,), -jnp.inf, dtype), jnp.zeros((batch,), dtype))
  (running_max, running_sum), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  return running_max + jnp.log(running_sum) - math.log(num_samples)


def importance_sampled_log_likelihood(
    encode_fn: EncodeFn, decode_fn: DecodeFn, likelihood: Likelihood, x: Array, y: Array | None, key: Array, *,
    num_samples: int = 5000, chunk_size: int = 100) -> Array:
  """Importance-sampled log p(x) ~= log (1/K) sum_k w_k per example, [B] (Burda et al. 2015).

  The K = ``num_samples`` samples are drawn in ceil(K / chunk_size) chunks inside ``jax.lax.scan``
  (chunk c uses ``fold_in(key, c)``); the unused tail of the last chunk is masked out, so exactly K
  samples count. Memory is O(B * chunk_size * D). Jittable with static num_samples and chunk_size.
  """
  mean, logvar = encode_fn(x, y)
  return importance_sampled_log_likelihood_from_posterior(
      decode_fn, likelihood, x, y, mean, logvar, key, num_samples=num_samples, chunk_size=chunk_size)


def active_units(posterior_means: Array, threshold: float = 0.01) -> tuple[Array, Array]:
  """Active units (Burda et al. 2015): A_u = #{ j : Cov_x(E_q[z_j | x]) > threshold }.

  posterior_means [N, L] -> (count, variances [L]); variances are the (population) variances over x.
  """
  means = jnp.asarray(posterior_means)
  variances = jnp.var(means, axis=0)
  return jnp.sum(variances > threshold), variances


def _binarize(x: Array, key: Array, mode: str) -> Array:
  if mode == "dynamic":
    return jax.random.bernoulli(key, x).astype(x.dtype)
  if mode == "fixed":
    return (x > 0.5).astype(x.dtype)
  return x


def evaluate_encoder_model(
    encode_fn: EncodeFn, decode_fn: DecodeFn, likelihood: Likelihood, images: np.ndarray,
    labels: np.ndarray | None, key: Array, *, batch_size: int = 500, num_importance_samples: int = 5000,
    chunk_size: int = 100, binarize: str = "none", progress: bool = False,
    placement: Placement = LEFT_TO_JIT) -> dict[str, Any]:
  """Evaluates a model with an encoder on a whole split; returns means over examples as Python numbers.

  images: uint8 [N, H, W, C] (mapped to [0, 1] by / 255); labels: int [N] or None; encode_fn / decode_fn
  already bound to parameters. ``binarize``: 'none' keeps grey levels, 'dynamic' draws x ~ Bernoulli(pixel)
  with ``fold_in(key, batch_index)`` (the standard stochastic-binarization protocol, reproducible given key
  and batch_size), 'fixed' thresholds at 0.5. The last batch is zero-padded to ``batch_size`` and the
  padding dropped, so the per-batch function is compiled once. ``placement`` (gen_jax.eval.placement):
  each batch is split over its devices (``batch_size`` must then divide by their count; ``encode_fn`` /
  ``decode_fn`` must be bound to parameters on its mesh); the numbers do not depend on the device count.

  Per example it computes the 1-sample ELBO = recon_log_prob - KL (analytic KL), the importance-sampled
  log p(x) with ``num_importance_samples`` samples (skipped when 0: 'nll' and 'nll_bits_per_dim' are NaN),
  the per-pixel squared error of likelihood.mean(decode(posterior mean)) against x, and the posterior
  means for the active-unit count. Keys: 'elbo', 'recon_log_prob', 'kl', 'nll' (= -mean log p(x), nats),
  'nll_bits_per_dim', 'elbo_bits_per_dim' (from -elbo), 'recon_mse', 'active_units', 'num_latents',
  'num_examples', 'num_importance_samples'.
  """
  if binarize not in BINARIZATIONS:
    raise ConfigError(f"unknown binarization {binarize!r}; valid: {', '.join(map(repr, BINARIZATIONS))}")
  if batch_size < 1 or num_importance_samples < 0:
    raise ConfigError(f"need config.eval.batch_size >= 1 and config.eval.num_importance_samples >= 0; "
                      f"got {batch_size} and {num_importance_samples}")
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C]; got shape {images.shape}")
  num_examples = images.shape[0]
  if num_examples == 0:
    raise ValueError("cannot evaluate an empty split")
  if batch_size % placement.num_devices:
    raise ConfigError(f"evaluation batch size {batch_size} does not divide over {placement.num_devices} devices; use "
                      f"{placement.round_batch(batch_size)} (config.eval.batch_size)")
  batch_size = placement.round_batch(min(batch_size, num_examples))   # a small split: padded to a multiple
  num_dims = int(np.prod(images.shape[1:]))
  if labels is not None:
    labels = np.asarray(labels, np.int32)

  @jax.jit
  def batch_stats(raw: Array, y: Array | None, batch_index: Array) -> dict[str, Array]:
    x = raw.astype(jnp.float32) / 255.0
    bin_key, elbo_key, is_key = jax.random.split(jax.random.fold_in(key, batch_index), 3)
    x = _binarize(x, bin_key, binarize)
    mean, logvar = encode_fn(x, y)
    kl = jnp.sum(distributions.gaussian_kl_to_standard(mean, logvar), axis=-1)
    _, log_px_z = log_importance_weights_from_posterior(decode_fn, likelihood, x, y, mean, logvar, elbo_key, 1)
    recon = log_px_z[0]
    x_hat = likelihood.mean(decode_fn(mean, y))
    stats = {
        "recon_log_prob": recon,
        "kl": kl,
        "recon_mse": jnp.mean(jnp.square(x_hat - x), axis=(1, 2, 3)),
        "posterior_mean": mean,
    }
    if num_importance_samples > 0:
      stats["log_px"] = importance_sampled_log_likelihood_from_posterior(
          decode_fn, likelihood, x, y, mean, logvar, is_key,
          num_samples=num_importance_samples, chunk_size=chunk_size)
    return stats

  starts = range(0, num_examples, batch_size)
  if progress:
    from tqdm.auto import tqdm
    starts = tqdm(starts, desc="evaluate", unit="batch")
  collected: dict[str, list[np.ndarray]] = {}
  for batch_index, start in enumerate(starts):
    stop = min(start + batch_size, num_examples)
    n = stop - start
    raw = images[start:stop]
    y = None if labels is None else labels[start:stop]
    if n < batch_size:
      pad = batch_size - n
      raw = np.concatenate([raw, np.zeros((pad,) + raw.shape[1:], raw.dtype)])
      y = None if y is None else np.concatenate([y, np.zeros((pad,), y.dtype)])
    stats = jax.device_get(batch_stats(placement.batch(raw), placement.batch(y), jnp.int32(batch_index)))
    for name, value in stats.items():
      collected.setdefault(name, []).append(np.asarray(value, np.float64)[:n])

  per_example = {name: np.concatenate(values) for name, values in collected.items()}
  recon = float(per_example["recon_log_prob"].mean())
  kl = float(per_example["kl"].mean())
  elbo = float((per_example["recon_log_prob"] - per_example["kl"]).mean())
  nll = float(-per_example["log_px"].mean()) if num_importance_samples > 0 else float("nan")
  count, _ = active_units(per_example["posterior_mean"])
  return {
      "elbo": elbo,
      "recon_log_prob": recon,
      "kl": kl,
      "nll": nll,
      "nll_bits_per_dim": float(bits_per_dim(nll, num_dims)),
      "elbo_bits_per_dim": float(bits_per_dim(-elbo, num_dims)),
      "recon_mse": float(per_example["recon_mse"].mean()),
      "active_units": int(count),
      "num_latents": int(per_example["posterior_mean"].shape[1]),
      "num_examples": int(num_examples),
      "num_importance_samples": int(num_importance_samples),
  }


def independent_pixel_nll(train_images: np.ndarray, test_images: np.ndarray, levels: int,
                          binarize: str = "none", chunk: int = 2000) -> np.ndarray:
  """-log p(x) in nats of each test image under the trivial baseline that models every pixel (position and channel)
  on its own, fitted on the training images: the floor a likelihood model must beat to have learned anything
  about how pixels go together.

  levels 256: per pixel, the training histogram of its 256 values with add-one smoothing, (count + 1) / (N + 256).
  levels 2 (Bernoulli): per pixel p = (sum of q + 1) / (N + 2), q = the probability the pixel is 1 as the model's
  evaluation binarizes it (dynamic: pixel / 255; fixed: pixel / 255 > 0.5, as _binarize); a test image's value is
  the expected -log p over its binarization draw, -sum [q log p + (1 - q) log(1 - p)] (exact; the model's NLL uses
  one draw; for data already 0 / 255, q is 0 or 1 and this is the plain -log p).
  Images: uint8 [N, H, W, C]. Returns [num_test] float64."""
  train, test = np.asarray(train_images), np.asarray(test_images)
  if train.shape[1:] != test.shape[1:] or train.ndim != 4 or len(train) == 0:
    raise ValueError(f"train and test images must be [N, H, W, C] of one shape; got {train.shape}, {test.shape}")
  d = int(np.prod(train.shape[1:]))
  if levels == 2:
    def ones(x):   # [n, d] probability that each pixel is 1
      x = x.reshape(len(x), d).astype(np.float64) / 255.0
      return (x > 0.5).astype(np.float64) if binarize == "fixed" else x
    total = sum(ones(train[i:i + chunk]).sum(0) for i in range(0, len(train), chunk))
    p = (total + 1.0) / (len(train) + 2.0)
    q = ones(test)
    return -(q @ np.log(p) + (1.0 - q) @ np.log1p(-p))
  if levels != 256:
    raise ValueError(f"independent-pixel baseline: levels must be 2 or 256, got {levels}")
  offsets = np.arange(d, dtype=np.int64) * 256
  counts = np.zeros(d * 256, np.int64)
  for i in range(0, len(train), chunk):
    counts += np.bincount((train[i:i + chunk].reshape(-1, d).astype(np.int64) + offsets).ravel(),
                          minlength=d * 256)
  log_p = np.log((counts + 1.0) / (len(train) + 256.0))
  return -log_p[test.reshape(-1, d).astype(np.int64) + offsets].sum(axis=1)


BASELINE_PER_CLASS = metric_specs.NLL_BASELINE_PER_CLASS   # how a conditional model's baseline line begins


def independent_pixel_metrics(train_images, test_images, levels: int, binarize: str = "none",
                              train_labels=None, test_labels=None) -> tuple[dict, str]:
  """({'nll_independent', 'nll_bits_per_dim_independent'}, the protocol's description of the baseline): the mean of
  `independent_pixel_nll` over the test images, in nats and bits/dim.

  With labels (a conditional model, whose NLL is -log p(x|y)): the same baseline fitted per class, each test image
  scored by the histograms of its own class, so the conditional model is held to a conditional baseline."""
  if (train_labels is None) != (test_labels is None):
    raise ValueError("independent-pixel baseline: give labels for both the training and the test images, or neither")
  if train_labels is None:
    per_image = independent_pixel_nll(train_images, test_images, levels, binarize)
  else:
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    train_images, test_images = np.asarray(train_images), np.asarray(test_images)
    per_image = np.zeros(len(test_labels), np.float64)
    for c in np.unique(test_labels):
      of_c = train_labels == c
      if not of_c.any():
        raise ValueError(f"independent-pixel baseline: class {c} has test images but no training images")
      per_image[test_labels == c] = independent_pixel_nll(train_images[of_c], test_images[test_labels == c], levels,
                                                          binarize)
  base = float(per_image.mean())
  kind = ("Bernoulli, add-one smoothed; expected over the binarization" if levels == 2
          else "256-bin histogram, add-one smoothed")
  if train_labels is None:
    what = f"every pixel on its own, fitted on the {len(train_images)} training images ({kind})"
  else:
    what = (f"{BASELINE_PER_CLASS} (the model is conditional: -log p(x|y)), fitted per class on"
            f" the {len(train_images)} training images ({kind})")
  return ({"nll_independent": base,
           "nll_bits_per_dim_independent": float(bits_per_dim(base, int(np.prod(np.shape(test_images)[1:]))))},
          f"nll_independent: {what}, on the same test images")


def evaluate_likelihood_group(family, models, dataset, key: Array, eval_cfg, progress: bool = False,
                              placement: Placement = LEFT_TO_JIT) -> dict[str, Any]:
  """{'metrics', 'protocol'} of the 'likelihood' group for a family with an encoder (see the module docstring).

  `placement` (gen_jax.eval.placement): the mesh whose devices share each batch (`models` already on it); the
  batch size is rounded up to a multiple of their count, and recorded."""
  caps = family.capabilities
  if caps.has_likelihood:
    return _likelihood_model_metrics(family, models, dataset, key, eval_cfg, progress, placement)
  if caps.has_encoder:
    return _reconstruction_metrics(family, models, dataset, eval_cfg, placement)
  raise ValueError(f"the {family.name} family has no encoder: the likelihood group does not apply")


def _likelihood_model_metrics(family, models, dataset, key, eval_cfg, progress, placement) -> dict[str, Any]:
  """Test ELBO (recon + KL), importance-sampled NLL, active units, reconstruction error."""
  caps = family.capabilities
  split = getattr(dataset, eval_cfg.split)
  n = min(int(eval_cfg.num_examples) or len(split.images), len(split.images))
  _, images, labels = subsets.subset(split, n, int(eval_cfg.subset_seed), "likelihood")
  model = family.likelihood_model(models)
  k = int(eval_cfg.num_importance_samples)
  batch_size = placement.round_batch(min(int(eval_cfg.batch_size), n))   # as evaluated
  # The trivial baseline on the same test images (ranking: a model no better than it is marked, never best); first,
  # as it is cheap and a failure here should not cost the importance-sampled estimate.
  conditional = bool(caps.conditional) and labels is not None
  baseline, baseline_text = independent_pixel_metrics(
      dataset.train.images, images, model.likelihood.levels, dataset.binarization or "none",
      train_labels=dataset.train.labels if conditional else None, test_labels=labels if conditional else None)
  metrics = evaluate_encoder_model(
      model.encode, model.decode, model.likelihood, images, labels, key, batch_size=batch_size,
      num_importance_samples=k, chunk_size=int(eval_cfg.chunk_size),
      binarize=dataset.binarization or "none", progress=progress, placement=placement)
  metrics.update(baseline)
  protocol = {
      "split": eval_cfg.split, "num_examples": n, "batch_size": batch_size,
      "examples": describe_examples(split, n, eval_cfg),
      "devices": placement.describe(),
      "num_importance_samples": k, "elbo_samples": 1,
      "binarization": {"dynamic": "a fresh Bernoulli(pixel/255) draw per test image, from the eval key",
                       "fixed": "the fixed binarization of the training data"}.get(dataset.binarization, "none"),
      "likelihood": model.likelihood.name, **model.protocol,
      "params": family.params_kind(models),
      "estimator": f"log mean of {k} importance weights p(x,z)/q(z|x), z ~ q (Burda et al. 2015)",
      "baseline": baseline_text,
  }
  return {"metrics": metrics, "protocol": protocol}


def _reconstruction_metrics(family, models, dataset, eval_cfg, placement) -> dict[str, Any]:
  """Test reconstruction error (pixel MSE in [0, 1]) of the posterior mean."""
  split = getattr(dataset, eval_cfg.split)
  n = min(int(eval_cfg.num_examples) or len(split.images), len(split.images))
  _, images, labels = subsets.subset(split, n, int(eval_cfg.subset_seed), "likelihood")
  bs = placement.round_batch(int(eval_cfg.batch_size))
  put = placement.batch
  labels = labels if labels is not None else np.zeros(n, np.int32)

  def squared_error(m, x, y):
    mean, _ = family.encode(m, x, y)
    return jnp.mean(jnp.square(family.decode(m, mean, y) - x), axis=(1, 2, 3))

  recon_fn = jax.jit(squared_error)
  errors = []
  for start in range(0, n, bs):
    xb = jnp.asarray(images[start:min(n, start + bs)], jnp.float32) / 255.0
    errors.append(recon_fn(models, put(xb), put(jnp.asarray(labels[start:min(n, start + bs)]))))
  mse = float(jnp.mean(jnp.concatenate(errors)))
  return {"metrics": {"recon_mse": mse},
          "protocol": {"split": eval_cfg.split, "num_examples": n,
                       "examples": describe_examples(split, n, eval_cfg),
                       "recon_mse": "per-pixel squared error in [0, 1] of Dec(mean of q(z|x))"}}


def describe_examples(split, n: int, eval_cfg) -> str:
  """Which test examples: all of the split, or a seeded class-balanced draw (gen_jax/data/subsets.py)."""
  return subsets.describe_subset(n, len(split.images), int(eval_cfg.subset_seed), "likelihood",
                                 split.labels is not None)
