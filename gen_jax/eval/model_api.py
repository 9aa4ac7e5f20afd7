"""One interface over every trained model family, for the evaluation suite.

`EvalModel` wraps a family (any `gen_jax.models.family.ModelFamily`) and its restored `models` dict and
exposes what the instruments of `gen_jax/eval/` need, in one convention (the family protocol's):

  images are float32 [N, H, W, C] in [0, 1] (2-D toy data: [N, 2]); labels int32 [N].

  prior(key, n)             z ~ N(0, I), [n, latent_dim]
  decode(z, labels)         generator / decoder mean image in [0, 1]
  sample(key, n, labels)    decode(prior(key, n), labels); labels default to arange(n) % num_classes
  model_input(x, key)       what the model was trained on (binarized for binarized datasets)
  encode(x, labels)         (mean, logvar) of q(z | x)               [has_encoder]
  reconstruct(x, labels)    decode(mean of q(z | x))                  [has_encoder]
  elbo(x, labels, key)      per-example 1-sample ELBO in nats         [has_likelihood]
  discriminator(x, labels)  per-example D logit (higher = more real)  [has_discriminator]

Which of the bracketed methods exist comes from the family's `capabilities`. Every method calls the
family's operation jitted once per input shape, with the parameters passed as arguments (not baked in
as constants); `x` is the model input as returned by `model_input` where it matters (binarized data).
Callers batch large inputs with `gen_jax.eval.batching.map_batches` so memory stays bounded. The
parameters live on the evaluation mesh (`gen_jax.eval.placement`): replicated, with each input split
over its devices along the batch axis.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.eval.placement import Placement, eval_placement
from gen_jax.models.family import ModelFamily


def unit_images(images) -> np.ndarray:
  """uint8 pixels -> float32 in [0, 1]; float images are taken to be in [0, 1] already (the convention above)."""
  images = np.asarray(images)
  return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


class EvalModel:
  """A trained model of any family behind the evaluation interface (see module docstring)."""

  def __init__(self, family: ModelFamily, models: dict, dataset, placement: Placement | None = None):
    self.family = family
    self.placement = placement if placement is not None else eval_placement()
    # EMA weights are sampled with batch-norm statistics computed for them (ModelFamily.sampling_models).
    self.models = self.placement.replicate(family.sampling_models(models))
    self.dataset = dataset
    self.family_name: str = family.name
    self.data_shape = tuple(dataset.image_shape)
    self.is_image = len(self.data_shape) == 3
    self.num_classes: int | None = dataset.num_classes
    self.capabilities = family.capabilities
    self.conditional = self.capabilities.conditional
    self.latent_dim = int(family.latent_dim)
    self.binarization = getattr(dataset, "binarization", None)
    self.has_encoder = self.capabilities.has_encoder
    self.has_likelihood = self.capabilities.has_likelihood
    self.has_discriminator = self.capabilities.has_discriminator
    self.params_kind = family.params_kind(self.models)

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
    return self.family.prior(key, n)

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


# The family's operations, jitted with the family static (its hash is its identity) and the models as arguments.
_decode = jax.jit(lambda family, models, z, labels: family.decode(models, z, labels), static_argnums=0)
_encode = jax.jit(lambda family, models, x, labels: family.encode(models, x, labels), static_argnums=0)
_elbo = jax.jit(lambda family, models, x, labels, key: family.elbo(models, x, labels, key), static_argnums=0)
_discriminate = jax.jit(lambda family, models, x, labels: family.discriminate(models, x, labels), static_argnums=0)


def from_run(run: Any, models: dict) -> EvalModel:
  """The EvalModel of a `gen_jax.train.loop.Run` and its restored `state.models`, on the mesh of
  `config.eval.num_devices` (see `gen_jax.eval.placement`)."""
  placement = eval_placement(int(run.config.eval.num_devices))
  return EvalModel(run.family, models, run.dataset, placement)
