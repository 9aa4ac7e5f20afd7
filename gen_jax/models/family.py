"""The model-family protocol: what a family (VAE, GAN, VAE-GAN, or one you add) gives the trainer and evaluation.

A family binds networks, objective and optimizers for one kind of model. The trainer (`gen_jax/train/`) calls
`init_models`, `update_models` and `visualize`; evaluation (`gen_jax/eval/`) asks `capabilities` which operations
exist and calls them. No code outside a family's own module compares family names: add a family by writing one
module with a `ModelFamily` subclass and one line in `gen_jax/models/registry.py` (or `registry.register`).

Conventions of the evaluation operations (all pure functions of `(models, inputs)`, jittable with the family as a
static argument): images are float32 [N, H, W, C] in [0, 1] (2-D toy data: [N, 2]); labels int32 [N] (ignored
by an unconditional family); latents [N, latent_dim]. `models` is the `dict[str, ModelState]` of the train state.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from gen_jax import rng
from gen_jax.models import latent_paths
from gen_jax.models import standing_stats
from gen_jax.objectives import distributions
from gen_jax.objectives.vae import log_importance_weights_from_posterior
from gen_jax.models.state import ModelState

Models = dict[str, ModelState]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Capabilities:
  """Which operations a family has; evaluation picks its groups by these, never by the family's name.

  batches_per_step: real batches of `config.data.batch_size` one `update_models` call consumes (a GAN with
  n_critic discriminator steps: n_critic)."""
  can_sample: bool = True
  has_encoder: bool = False          # encode(): q(z | x)
  has_likelihood: bool = False       # likelihood_model() and elbo(): a pixel likelihood p(x | z)
  has_discriminator: bool = False    # discriminate(): a real-vs-fake score
  conditional: bool = False          # decode / sample use the labels
  batches_per_step: int = 1

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "Capabilities":
    """The inverse of `to_json`; fields it does not know are ignored, missing ones take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class LikelihoodModel(NamedTuple):
  """A latent-variable model with an amortized Gaussian posterior, its parameters bound (the contract of
  `gen_jax.objectives.vae`): what importance-sampled likelihood estimates need."""
  encode: Callable     # (x, labels) -> (mean, logvar) [N, L]
  decode: Callable     # (z, labels) -> the likelihood's parameters [N, H, W, C * P]
  likelihood: Any      # gen_jax.objectives.likelihoods.Likelihood: log_prob(x, out), mean(out), name
  protocol: dict       # what the evaluation protocol records about the model beyond that (e.g. the objective)


class ModelFamily(abc.ABC):
  """One kind of model on the shared trainer and the evaluation suite (see the module docstring).

  Subclasses set `name`, `sampled_model` (the key of `models` whose parameters make samples: its EMA
  parameters, when kept, are the ones evaluated), `progress_metrics` (shown in the progress bar) and, in
  `__init__(config, dataset)`, `latent_dim`."""
  name: ClassVar[str]
  sampled_model: ClassVar[str]
  progress_metrics: ClassVar[tuple[str, ...]] = ("loss",)
  latent_dim: int

  @property
  @abc.abstractmethod
  def capabilities(self) -> Capabilities:
    """What this family (as configured) can do."""

  # --- config ---------------------------------------------------------------------------------------------
  @classmethod
  def add_defaults(cls, config):
    """The config sections this family needs beyond the base schema, added with their defaults."""
    return config

  @classmethod
  def validate_config(cls, config) -> None:
    """Family-specific checks of a filled config; a ConfigError naming the key and the fix."""

  @classmethod
  def capabilities_for(cls, config) -> Capabilities | None:
    """The capabilities a family built from `config` will have, known before any data is loaded (what eval.py
    skips up front, how many real batches a study's step draws); None where the family cannot tell (then
    nothing is skipped before the model is built, and a step draws one batch)."""
    return None

  # --- trainer --------------------------------------------------------------------------------------------
  @abc.abstractmethod
  def init_models(self, key: jax.Array, example_batch: dict) -> Models:
    """The initial models; `example_batch` ({'image', 'label'}) fixes input shapes only."""

  @abc.abstractmethod
  def update_models(self, models: Models, batch: dict, key: jax.Array, step: jax.Array) -> tuple[Models, Metrics]:
    """One training update on `batch` (capabilities.batches_per_step real batches concatenated)."""

  @abc.abstractmethod
  def visualize(self, models: Models, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """Images (or 2-D point sets) to log, by name: {'samples': [N, H, W, C], ...}, values in [0, 1]."""

  @abc.abstractmethod
  def visualize_layout(self) -> dict[str, int]:
    """Images per row of each grid `visualize` returns."""

  # --- evaluation -----------------------------------------------------------------------------------------
  def prior(self, key: jax.Array, n: int) -> jax.Array:
    """n latent draws z ~ N(0, I), [n, latent_dim]."""
    return jax.random.normal(key, (n, self.latent_dim))

  @abc.abstractmethod
  def decode(self, models: Models, z: jax.Array, labels: jax.Array) -> jax.Array:
    """Latents -> data: the decoder's mean image or the generator's output, in [0, 1] (or 2-D points)."""

  def sample(self, models: Models, key: jax.Array, n: int, labels: jax.Array) -> jax.Array:
    """n samples: decode(prior(key, n), labels)."""
    return self.decode(models, self.prior(key, n), labels)

  def encode(self, models: Models, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, logvar) of q(z | x), each [N, latent_dim]; x in [0, 1] (the model input). [has_encoder]"""
    raise self._missing("has_encoder", "an encoder")

  def likelihood_model(self, models: Models) -> LikelihoodModel:
    """The posterior and pixel likelihood with the evaluated parameters bound. [has_likelihood]"""
    raise self._missing("has_likelihood", "a pixel likelihood")

  def elbo(self, models: Models, x: jax.Array, labels: jax.Array, key: jax.Array) -> jax.Array:
    """Per-example 1-sample ELBO in nats, [N]: log p(x | z) for one z ~ q(z | x), minus the analytic KL."""
    model = self.likelihood_model(models)
    mean, logvar = model.encode(x, labels)
    kl = jnp.sum(distributions.gaussian_kl_to_standard(mean, logvar), axis=-1)
    _, log_px_z = log_importance_weights_from_posterior(model.decode, model.likelihood, x, labels, mean, logvar,
                                                        key, 1)
    return log_px_z[0] - kl

  def discriminate(self, models: Models, x: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example discriminator logit [N] (higher = more real), evaluation mode. [has_discriminator]"""
    raise self._missing("has_discriminator", "a discriminator")

  def interpolate(self, z0: jax.Array, z1: jax.Array, num_steps: int, spherical: bool) -> jax.Array:
    """[P, L] x [P, L] -> [P, num_steps, L] latent paths (linear, or spherical with `spherical`)."""
    return latent_paths.interpolate(z0, z1, num_steps, spherical)

  def params_kind(self, models: Models) -> str:
    """'ema' when the sampled network keeps EMA parameters (those are evaluated), else 'raw'."""
    return "ema" if models[self.sampled_model].ema_params is not None else "raw"

  # --- the weights that are sampled -------------------------------------------------------------------------
  def apply_sampled_train(self, params, collections, z: jax.Array, labels: jax.Array):
    """The sampled network in train mode on (z, labels): the collections it returns (batch-norm running
    averages updated once). Families whose sampled network has batch norm implement this."""
    raise NotImplementedError(f"the {self.name} family keeps batch-norm statistics in its sampled network "
                              f"but does not implement apply_sampled_train")

  def sampling_models(self, models: Models, key: jax.Array | None = None) -> Models:
    """`models` as sampled and evaluated: where the sampled network keeps EMA parameters and batch-norm
    statistics, those statistics are recomputed for the EMA parameters on fixed prior draws (standing
    statistics, models/standing_stats.py); otherwise `models` unchanged. Call once before sampling."""
    model = models[self.sampled_model]
    if model.ema_params is None or not standing_stats.has_batch_stats(model.collections):
      return models
    if key is None:
      key = rng.for_purpose(rng.root_key(0), "standing_stats")
    fn = self.__dict__.get("_standing_stats_fn")
    if fn is None:
      fn = self.__dict__["_standing_stats_fn"] = jax.jit(self._with_standing_stats)
    return fn(models, key)

  def _with_standing_stats(self, models: Models, key: jax.Array) -> Models:
    model = models[self.sampled_model]
    classes = int(getattr(self, "num_classes", None) or 1)

    def draw(k, n):
      return self.prior(k, n), jnp.arange(n, dtype=jnp.int32) % classes

    collections = standing_stats.recompute_batch_stats(
        lambda coll, z, y: self.apply_sampled_train(model.ema_params, coll, z, y), model.collections, draw, key)
    return {**models, self.sampled_model: model.replace(collections=collections)}

  def raw_models(self, models: Models) -> Models:
    """`models` with the sampled network's EMA parameters dropped: sampling them uses the raw weights and
    the running statistics those weights accumulated."""
    model = models[self.sampled_model]
    if model.ema_params is None:
      return models
    return {**models, self.sampled_model: model.replace(ema_params=None)}

  def _missing(self, flag: str, what: str) -> NotImplementedError:
    return NotImplementedError(f"the {self.name} family has no {what} (capabilities.{flag} is False); "
                               f"check the capability before calling")
