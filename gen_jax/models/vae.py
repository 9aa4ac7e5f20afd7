"""The VAE family on the shared trainer: VAE, beta-VAE, conditional VAE, IWAE.

One model state, `models['vae']`, holding encoder and decoder parameters.
The loss itself lives in `gen_jax/objectives/vae.py`; this file binds it to
the network and the optimizer and provides sample / reconstruction /
interpolation images for logging.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gen_jax.data.dataset import Dataset
from gen_jax.nets.vae import build_vae
from gen_jax.objectives import vae as vae_objective
from gen_jax.objectives.likelihoods import make_likelihood
from gen_jax.models import optim
from gen_jax.models import precision as precision_lib
from gen_jax.models.family import Capabilities, LikelihoodModel, ModelFamily
from gen_jax.models.state import ModelState


class VaeFamily(ModelFamily):
  """Builds the VAE from the config; provides the update, the logging images and the evaluation operations."""
  name = "vae"
  sampled_model = "vae"
  progress_metrics = ("loss",)

  # --- config: this family's defaults and rules (gen_jax.config asks them at start-up) ----------------
  @classmethod
  def add_defaults(cls, config):
    """schema.base() is the VAE's schema already: nothing to add."""
    return config

  @classmethod
  def validate_config(cls, config):
    """The IWAE-only keys, the archs the VAE builds, and a likelihood that matches the data's pixels."""
    from gen_jax import config as config_lib  # noqa: PLC0415 (same layer; imported late: config asks us)
    from gen_jax.nets.vae import ARCHS  # noqa: PLC0415
    ConfigError = config_lib.ConfigError
    objective = config.objective
    if objective.name == "iwae":
      for key, neutral in (("beta", 1.0), ("kl_warmup_steps", 0), ("free_bits", 0.0)):
        if objective[key] != neutral:
          raise ConfigError(f"config.objective.{key} has no meaning for the IWAE objective; leave it at {neutral} "
                            f"or use config.objective.name='elbo'")
    if objective.gradient == "dreg" and objective.name != "iwae":
      raise config_lib.dreg_error(config)
    config_lib.check_arch(config, ARCHS)
    binary = config.data.name == "binarized_mnist"
    if binary and config.model.likelihood not in (None, "bernoulli"):
      raise ConfigError("config.data.name='binarized_mnist' gives binary pixels: use config.model.likelihood='bernoulli'")
    if not binary and config.model.likelihood == "bernoulli":
      pixels = {"mnist": "grey levels", "fashion_mnist": "grey levels", "cifar10": "colour pixels"}.get(
          config.data.name, "grey-level or colour pixels")
      raise ConfigError(f"config.model.likelihood='bernoulli' needs binary data but config.data.name="
                        f"{config.data.name!r} has {pixels} (0..255): use --config.model.likelihood=logistic "
                        f"(or 'gaussian', 'gaussian_fixed'), a config that sets it (configs/vae.py:conv,folder for "
                        f"your own images, :conv,cifar10, :grey), or data.name='binarized_mnist'")
    return config


  def __init__(self, config, dataset: Dataset):
    self.config = config
    self.likelihood = make_likelihood(config.model.likelihood, float(config.model.gaussian_sigma))
    self.num_classes = dataset.num_classes
    self.conditional = bool(config.model.conditional)
    self.model = build_vae(config.model, dataset.image_shape, dataset.num_classes, self.likelihood.params_per_channel)
    self.tx = optim.make_optimizer(config.optimizer, optim.schedule_horizon(config))
    self.ema_decay = float(config.train.ema_decay)
    self.latent_dim = int(config.model.latent_dim)
    self.precision = precision_lib.from_config(config)

  @classmethod
  def capabilities_for(cls, config) -> Capabilities:
    return Capabilities(can_sample=True, has_encoder=True, has_likelihood=True, has_discriminator=False,
                        conditional=bool(config.model.conditional), batches_per_step=1)

  @property
  def capabilities(self) -> Capabilities:
    return self.capabilities_for(self.config)

  # --- binding parameters -------------------------------------------------------------------
  def encode_fn(self, params):
    return lambda x, y: self.model.apply({"params": params}, x, y if self.conditional else None,
                                         method=self.model.encode)

  def decode_fn(self, params):
    return lambda z, y: self.model.apply({"params": params}, z, y if self.conditional else None,
                                         method=self.model.decode)

  # --- trainer interface --------------------------------------------------------------------
  def init_models(self, key, example_batch):
    y = example_batch["label"] if self.conditional else None
    params = self.model.init(key, example_batch["image"], y)["params"]
    return {"vae": ModelState.create(params, self.tx, ema=self.ema_decay > 0)}

  def loss(self, params, batch, key, step):
    """The objective; encoder and decoder run in the compute dtype, their outputs and the loss in float32."""
    obj = self.config.objective
    p = self.precision
    compute_params = p.cast_to_compute(params)
    encode, decode = p.wrap(self.encode_fn(compute_params)), p.wrap(self.decode_fn(compute_params))
    return vae_objective.vae_loss(
        encode, decode, self.likelihood, batch["image"], batch["label"], key,
        step=step, objective=obj.name, num_samples=int(obj.num_samples), beta=float(obj.beta),
        kl_warmup_steps=int(obj.kl_warmup_steps), free_bits=float(obj.free_bits),
        gradient=str(obj.gradient))

  def update_models(self, models, batch, key, step):
    vae = models["vae"]
    (_, metrics), grads = jax.value_and_grad(self.loss, has_aux=True)(vae.params, batch, key, step)
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["param_norm"] = optax.tree.norm(vae.params)
    return {"vae": vae.apply_gradients(grads, self.tx, self.ema_decay,
                                       after=(metrics["grad_norm"], metrics["param_norm"]), ema_step=step)}, metrics

  def visualize(self, models, batch, key, num: int = 64, interp_pairs: int = 8, interp_steps: int = 10):
    """Image grids (values in [0, 1]): prior samples, reconstructions, latent interpolations."""
    params = models["vae"].eval_params()
    encode, decode = self.encode_fn(params), self.decode_fn(params)
    x, y = batch["image"], batch["label"]
    n = min(num, x.shape[0])
    if self.conditional:
      sample_labels = jnp.arange(num, dtype=jnp.int32) % self.num_classes
    else:
      sample_labels = jnp.zeros((num,), jnp.int32)
    z = jax.random.normal(key, (num, self.latent_dim))
    samples = self.likelihood.mean(decode(z, sample_labels))
    mean, _ = encode(x[:n], y[:n])
    recon = self.likelihood.mean(decode(mean, y[:n]))
    # Rows alternate: originals, their reconstructions.
    half = max(1, n // 2)
    pairs = jnp.stack([x[:half], recon[:half]], axis=1).reshape((2 * half,) + x.shape[1:])
    p = min(interp_pairs, n // 2)
    out = {"samples": samples, "reconstructions": pairs}
    for kind, spherical in (("interpolation_linear", False), ("interpolation_spherical", True)):
      path = self.interpolate(mean[:p], mean[p:2 * p], interp_steps, spherical)       # [P, T, L]
      labels = jnp.repeat(y[:p], interp_steps)
      imgs = self.likelihood.mean(decode(path.reshape(-1, self.latent_dim), labels))
      out[kind] = imgs
    return out

  def visualize_layout(self) -> dict[str, int]:
    """Images per row of each grid."""
    return {"samples": 8, "reconstructions": 8, "interpolation_linear": 10, "interpolation_spherical": 10}

  # --- evaluation operations (see gen_jax/models/family.py) ----------------------------------------------
  def decode(self, models, z, labels):
    return self.likelihood.mean(self.decode_fn(models["vae"].eval_params())(z, labels))

  def encode(self, models, x, labels):
    return self.encode_fn(models["vae"].eval_params())(x, labels)

  def likelihood_model(self, models) -> LikelihoodModel:
    params = models["vae"].eval_params()
    return LikelihoodModel(self.encode_fn(params), self.decode_fn(params), self.likelihood,
                           {"objective": self.config.objective.name})
