"""One interface over every trained model family, for the evaluation suite.

`EvalModel` wraps a family (VAE, GAN, VAE-GAN) and its restored `models` dict and
exposes what the instruments of `gen_jax/eval/` need, in one convention:

  images are float32 [N, H, W, C] in [0, 1] (2-D toy data: [N, 2]); labels int32 [N].

  prior(key, n)             z ~ N(0, I), [n, latent_dim]
  decode(z, labels)         generator / decoder mean image in [0, 1]
  sample(key, n, labels)    decode(prior(key, n), labels); labels default to arange(n) % num_classes
  model_input(x, key)       what the model was trained on (binarized for binarized datasets)
  encode(x, labels)         (mean, logvar) of q(z | x)               [has_encoder]
  reconstruct(x, labels)    decode(mean of q(z | x))                  [has_encoder]
  elbo(x, labels, key)      per-example 1-sample ELBO in nats         [has_likelihood]
  discriminator(x, labels)  per-example D logit (higher = more real)  [has_discriminator]

Every method is jitted once per input shape with the parameters passed as arguments (not baked in
as constants); `x` is the model input as returned by `model_input` where it matters (binarized data).
Callers batch large inputs with `gen_jax.eval.batching.map_batches` so memory stays bounded. The
parameters live on the evaluation mesh (`gen_jax.eval.placement`): replicated, with each input split
over its devices along the batch axis.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.eval.placement import Placement, eval_placement
from gen_jax.objectives import distributions
from gen_jax.objectives.vae import log_importance_weights_from_posterior


def unit_images(images) -> np.ndarray:
  """uint8 pixels -> float32 in [0, 1]; float images are taken to be in [0, 1] already (the convention above)."""
  images = np.asarray(images)
  return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


class EvalModel:
  """A trained model of any family behind the evaluation interface (see module docstring)."""

  def __init__(self, family, models: dict, dataset, placement: Placement | None = None):
    self.family = family
    self.placement = placement if placement is not None else eval_placement()
    self.models = self.placement.replicate(models)
    self.dataset = dataset
    self.family_name: str = family.name
    self.data_shape = tuple(dataset.image_shape)
    self.is_image = len(self.data_shape) == 3
    self.num_classes: int | None = dataset.num_classes
    self.conditional = bool(getattr(family, "conditional", False))
    self.latent_dim = int(family.latent_dim)
    self.binarization = getattr(dataset, "binarization", None)
    self.has_encoder = family.name in ("vae", "vaegan")
    self.has_likelihood = family.name == "vae"
    self.has_discriminator = family.name in ("gan", "vaegan")
    self.params_kind = self._params_kind()

  def _params_kind(self) -> str:
    main = {"vae": "vae", "gan": "generator", "vaegan": "decoder"}[self.family_name]
    return "ema" if self.models[main].ema_params is not None else "raw"

  # --- labels and inputs --------------------------------------------------------------------------
  def default_labels(self, n: int) -> jax.Array:
    return jnp.arange(n, dtype=jnp.int32) % (self.num_classes or 1)

  def _labels(self, labels, n: int) -> jax.Array:
    return self.default_labels(n) if labels is None else jnp.asarray(labels, jnp.int32)

  def model_input(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """[0, 1] pixels -> the model's input space: a Bernoulli draw ('dynamic', needs key), threshold ('fixed')."""
    x = jnp.asarray(x, jnp.float32)
    if self.binarization == "dynamic" and key is not None:
      return jax.random.bernoulli(key, x).astype(jnp.float32)
    if self.binarization in ("dynamic", "fixed"):
      return (x > 0.5).astype(jnp.float32)
    return x

  # --- generation ------------------------------------------------------------------------------------
  def prior(self, key: jax.Array, n: int) -> jax.Array:
    return jax.random.normal(key, (n, self.latent_dim))

  def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return _decode(self.family, self.models, self._put(jnp.asarray(z, jnp.float32)),
                   self._put(self._labels(labels, z.shape[0])))

  def sample(self, key: jax.Array, n: int, labels: jax.Array | None = None) -> jax.Array:
    return self.decode(self.prior(key, n), labels)

  # --- encoder models ------------------------------------------------------------------------------
  def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    self._need("has_encoder", "an encoder")
    return _encode(self.family, self.models, self._put(jnp.asarray(x, jnp.float32)),
                   self._put(self._labels(labels, x.shape[0])))

  def reconstruct(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    mean, _ = self.encode(x, labels)
    return self.decode(mean, labels)

  def elbo(self, x: jax.Array, labels: jax.Array | None, key: jax.Array) -> jax.Array:
    """Per-example 1-sample ELBO (analytic KL) in nats, [N]."""
    self._need("has_likelihood", "a pixel likelihood (ELBO)")
    return _elbo(self.family, self.models, self._put(jnp.asarray(x, jnp.float32)),
                 self._put(self._labels(labels, x.shape[0])), key)

  # --- discriminator models ------------------------------------------------------------------------
  def discriminator(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Per-example discriminator logit, [N] (evaluation mode)."""
    self._need("has_discriminator", "a discriminator")
    return _discriminate(self.family, self.models, self._put(jnp.asarray(x, jnp.float32)),
                         self._put(self._labels(labels, x.shape[0])))

  def _put(self, x):
    return self.placement.batch(x)

  def _need(self, flag: str, what: str) -> None:
    if not getattr(self, flag):
      raise ValueError(f"a {self.family_name} model has no {what}; check EvalModel.{flag} before calling")


def _gan_space(x: jax.Array) -> jax.Array:
  return x * 2.0 - 1.0


@functools.partial(jax.jit, static_argnums=0)
def _decode(family, models, z, labels):
  if family.name == "vae":
    params = models["vae"].eval_params()
    return family.likelihood.mean(family.decode_fn(params)(z, labels))
  if family.name == "gan":
    gen = models["generator"]
    out, _ = family.generator(gen.eval_params(), gen.collections, z, family.labels_for(labels), train=False)
    return family.from_gan_space(out)
  return family.decode(models, z, labels)


@functools.partial(jax.jit, static_argnums=0)
def _encode(family, models, x, labels):
  if family.name == "vae":
    return family.encode_fn(models["vae"].eval_params())(x, labels)
  return family.encode(models["encoder"].params, _gan_space(x), labels)


@functools.partial(jax.jit, static_argnums=0)
def _elbo(family, models, x, labels, key):
  params = models["vae"].eval_params()
  mean, logvar = family.encode_fn(params)(x, labels)
  kl = jnp.sum(distributions.gaussian_kl_to_standard(mean, logvar), axis=-1)
  _, log_px_z = log_importance_weights_from_posterior(family.decode_fn(params), family.likelihood, x, labels,
                                                      mean, logvar, key, 1)
  return log_px_z[0] - kl


@functools.partial(jax.jit, static_argnums=0)
def _discriminate(family, models, x, labels):
  disc = models["discriminator"]
  x = _gan_space(x) if len(x.shape) == 4 else x
  (logits, _), _ = family.discriminator(disc.params, disc.collections, x, family.labels_for(labels), train=False)
  return jnp.reshape(logits, (x.shape[0],))


def from_run(run: Any, models: dict) -> EvalModel:
  """The EvalModel of a `gen_jax.train.loop.Run` and its restored `state.models`, on the mesh of
  `config.eval.num_devices` (see `gen_jax.eval.placement`)."""
  placement = eval_placement(int(run.config.eval.get("num_devices", 0)))
  return EvalModel(run.family, models, run.dataset, placement)
