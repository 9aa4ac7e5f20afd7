"""Smoothness of the latent space: the perceptual path length (Karras et al. 2019, StyleGAN).

For a pair of latent endpoints (z0, z1) and t ~ U(0, 1), the path length of the pair is

  d = || f(G(interp(z0, z1, t))) - f(G(interp(z0, z1, t + eps))) ||^2 / eps^2

with G the decoder / generator, f a feature map (the dataset classifier's features, standing in for the VGG
features of the original), interp linear ('lerp') or spherical ('slerp', `gen_jax/models/latent_paths.py`, the one
the interpolation grids use). d estimates the squared speed of the image along the path in feature space; a smooth
latent space has a small, even d. Two summaries are reported:

  mean            the plain mean of d over the pairs (an unbiased estimate of E d);
  mean_filtered   the mean of the d between their 1st and 99th percentiles, StyleGAN's number (robust to the few
                  huge d that a path crossing a "seam" of the generator gives).

`latent_smoothness` measures an `EvalModel`: pairs of prior draws with slerp and lerp (every family; the same pairs
and the same t for both, so the two numbers differ only by the interpolation), and for encoder models lerp between
the posterior means of two real test images. A conditional model keeps one label along each path.

Memory is bounded: pairs go through the decoder `batch_size` at a time (`gen_jax.eval.batching.map_batches`); the
decoder and feature network stay the caller's own jitted functions, with their parameters as arguments.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import subsets
from gen_jax.errors import ConfigError
from gen_jax.eval.batching import map_batches
from gen_jax.eval.model_api import unit_images
from gen_jax.models.latent_paths import slerp

FILTER_PERCENTILES = (1.0, 99.0)


def _interp(z0: jax.Array, z1: jax.Array, t: jax.Array, spherical: bool) -> jax.Array:
  """[P, L] x [P, L] x [P, 1] -> [P, L], the point at t of each path."""
  return slerp(z0, z1, t) if spherical else (1.0 - t) * z0 + t * z1


@functools.partial(jax.jit, static_argnums=4)
def _path_points(z0: jax.Array, z1: jax.Array, t: jax.Array, epsilon: jax.Array, spherical: bool):
  """([2P, L], [P]): the points at t, then at t + eps, of every path (one decoder batch), and the step actually
  taken, (t + eps) - t in float32 (it differs from eps by up to ~1e-3 relative for eps = 1e-4 near t = 1)."""
  t0 = t[:, None]
  t1 = t0 + epsilon
  z = jnp.concatenate([_interp(z0, z1, t0, spherical), _interp(z0, z1, t1, spherical)], axis=0)
  return z, (t1 - t0)[:, 0]


@jax.jit
def _squared_speed(feats: jax.Array, step: jax.Array) -> jax.Array:
  feats = jnp.reshape(feats.astype(jnp.float32), (feats.shape[0], -1))
  num = feats.shape[0] // 2
  return jnp.sum(jnp.square(feats[:num] - feats[num:]), axis=-1) / jnp.square(step)


def path_length_distances(decode_fn: Callable, features_fn: Callable | None, z0, z1, t, labels=None,
                          epsilon: float = 1e-4, spherical: bool = False) -> jax.Array:
  """d of every pair (see the module docstring), [P]. decode_fn(z [n, L], labels [n] or None) -> data [n, ...];
  features_fn(data) -> [n, ...] (None: the data itself). Both path points go through the decoder as one batch.
  The interpolation and the distance are jitted here; decode_fn and features_fn are the caller's (jitted) own."""
  z, step = _path_points(jnp.asarray(z0, jnp.float32), jnp.asarray(z1, jnp.float32), jnp.asarray(t, jnp.float32),
                         jnp.float32(epsilon), bool(spherical))
  both_labels = None if labels is None else jnp.concatenate([jnp.asarray(labels)] * 2, axis=0)
  data = decode_fn(z, both_labels)
  return _squared_speed(jnp.asarray(data if features_fn is None else features_fn(data)), step)


def summarize_distances(distances) -> dict:
  """'mean', 'std', 'mean_filtered' (1st-99th percentile, StyleGAN's rule) and 'num_pairs' of per-pair d."""
  d = np.asarray(distances, np.float64)
  lo = np.percentile(d, FILTER_PERCENTILES[0], method="lower")
  hi = np.percentile(d, FILTER_PERCENTILES[1], method="higher")
  kept = d[(d >= lo) & (d <= hi)]
  return {"mean": float(d.mean()), "std": float(d.std()),
          "mean_filtered": float(kept.mean()) if kept.size else float("nan"), "num_pairs": int(d.size)}


def perceptual_path_length(decode_fn: Callable, features_fn: Callable | None, z0, z1, key: jax.Array,
                           epsilon: float = 1e-4, spherical: bool = False, labels=None,
                           batch_size: int = 256) -> dict:
  """PPL between the rows of z0 and z1 [P, L], t ~ U(0, 1) drawn from ``key`` per pair.

  decode_fn(z, labels) -> data (labels: [P] ints held fixed along each path, or None); features_fn(data) -> features
  (None: raw data). Returns {'mean', 'std', 'mean_filtered', 'num_pairs'}: see the module docstring for which is which.
  """
  if not epsilon > 0:
    raise ConfigError(f"perceptual_path_length: epsilon must be > 0 (eval.ppl_epsilon); got {epsilon!r}")
  z0, z1 = np.asarray(z0, np.float32), np.asarray(z1, np.float32)
  if z0.ndim != 2 or z0.shape != z1.shape or z0.shape[0] < 1:
    raise ValueError(f"perceptual_path_length needs endpoints z0, z1 of one shape [P >= 1, L]; got {z0.shape} "
                     f"and {z1.shape}")
  t = np.asarray(jax.random.uniform(key, (z0.shape[0],)), np.float32)
  labels = None if labels is None else np.asarray(labels, np.int32)
  fn = lambda a, b, tt, y: path_length_distances(decode_fn, features_fn, a, b, tt, y, epsilon, spherical)
  return summarize_distances(map_batches(fn, z0, z1, t, labels, batch_size=batch_size))




def _key_data(key: jax.Array) -> list[int]:
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  return [int(v) for v in np.asarray(key).ravel()]


def latent_smoothness(model: Any, features_fn: Callable | None, test_images, test_labels, key: jax.Array,
                      num_pairs: int, epsilon: float, batch_size: int, feature_net: str | None = None,
                      subset_seed: int = 0) -> dict:
  """PPL of an `EvalModel`: {'metrics': {...}, 'protocol': {...}}.

  metrics: 'ppl_prior_slerp', 'ppl_prior_lerp' (every family) and, for encoder models, 'ppl_encoding_lerp'; each with
  '_filtered' (1st-99th percentile mean, StyleGAN's) and '_std' variants. The unsuffixed number is the plain mean.
  ``test_images`` (uint8 or [0, 1] floats, [N, ...]) and ``test_labels`` ([N] or None) are only used by encoder
  models: pair i joins the posterior means of drawn images i and P + i (2P images, a seeded class-balanced draw,
  gen_jax/data/subsets.py, seed ``subset_seed``, purpose 'encoding_pairs'; the whole split when it holds at most
  2P). ``feature_net``
  names the feature network and its hash for the protocol (None: the caller's features_fn, unnamed).
  """
  if int(num_pairs) < 1:
    raise ConfigError(f"latent_smoothness: num_pairs (eval.ppl_samples) must be >= 1; got {num_pairs!r}")
  num_pairs = int(num_pairs)
  k0, k1, k_t, k_enc = jax.random.split(key, 4)
  decode = lambda z, y: model.decode(z, y)
  prior_labels = np.asarray(model.default_labels(num_pairs)) if model.conditional else None
  z0, z1 = np.asarray(model.prior(k0, num_pairs)), np.asarray(model.prior(k1, num_pairs))
  metrics: dict[str, float] = {}

  def record(name: str, stats: dict) -> None:
    metrics[name] = stats["mean"]
    metrics[name + "_filtered"] = stats["mean_filtered"]
    metrics[name + "_std"] = stats["std"]

  for name, spherical in (("ppl_prior_slerp", True), ("ppl_prior_lerp", False)):
    record(name, perceptual_path_length(decode, features_fn, z0, z1, k_t, epsilon, spherical, prior_labels,
                                        batch_size))
  protocol = {
      "metric": "perceptual path length (Karras et al. 2019): d = ||f(G(z_t)) - f(G(z_{t+eps}))||^2 / eps^2, "
                "t ~ U(0, 1) per pair; 'ppl_*' = plain mean of d, 'ppl_*_filtered' = mean of d within its "
                "1st-99th percentiles (StyleGAN's number), 'ppl_*_std' = std of d",
      "family": model.family_name, "params_kind": model.params_kind,
      "feature_net": feature_net if feature_net else ("raw data" if features_fn is None else "caller's features_fn"),
      "epsilon": float(epsilon), "num_pairs_prior": num_pairs, "key_data": _key_data(key),
      "prior_pairs": "z0, z1 independent N(0, I) draws; slerp and lerp share the pairs and the t",
      "slerp": "gen_jax.models.latent_paths.slerp (White 2016; unnormalised endpoints, as in the interpolation grids)",
  }
  if model.conditional:
    protocol["labels"] = ("one label held fixed along each path: arange(P) % num_classes for prior pairs, the "
                          "first image's label for encoding pairs")

  if model.has_encoder:
    images = unit_images(test_images)
    pairs = min(num_pairs, images.shape[0] // 2)
    if pairs < 1:
      raise ConfigError(f"latent_smoothness needs at least 2 test images for encoding pairs; got {images.shape[0]}")
    labels = None
    if model.conditional and test_labels is None:
      raise ConfigError("latent_smoothness: a conditional model needs test_labels to encode test images; "
                        "pass the split's labels")
    total = images.shape[0]
    idx = subsets.balanced_indices(total if test_labels is None else np.asarray(test_labels), 2 * pairs,
                                   subset_seed, "encoding_pairs")
    if model.conditional:
      labels = np.asarray(test_labels, np.int32)[idx]
    encode = lambda x, y: model.encode(model.model_input(x), y)[0]
    means = map_batches(encode, images[idx], labels, batch_size=batch_size)
    path_labels = None if labels is None else labels[:pairs]
    record("ppl_encoding_lerp", perceptual_path_length(decode, features_fn, means[:pairs], means[pairs:], k_enc,
                                                       epsilon, False, path_labels, batch_size))
    protocol["num_pairs_encoding"] = pairs
    labelled = test_labels is not None and len(np.unique(np.asarray(test_labels))) > 1
    protocol["encoding_pairs"] = (f"posterior means of drawn images i and {pairs} + i, i < {pairs}; the images: "
                                  + subsets.describe_subset(2 * pairs, total, subset_seed, "encoding_pairs", labelled)
                                  + "; as model_input(x) without a key (binarized data thresholded at 0.5; "
                                  f"binarization={model.binarization!r})")
  return {"metrics": metrics, "protocol": protocol}
