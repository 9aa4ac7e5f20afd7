"""The GAN family on the shared trainer: generator and discriminator, each with its own optimizer.

One jitted update does `config.gan.n_critic` discriminator steps (each on its
own real batch and fresh latents) and then one generator step. Keys: the step
key is folded with the critic index i for critic step i and with n_critic for
the generator step, then split by purpose; no key is used twice.

Losses live in `gen_jax/objectives/gan.py`; networks in `gen_jax/nets/gan.py`.
Images are mapped from [0, 1] to [-1, 1] for G (tanh output) and D.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gen_jax.nets.gan import build_gan
from gen_jax.objectives import gan as gan_objective
from gen_jax.models import optim
from gen_jax.models import precision as precision_lib
from gen_jax.models.family import Capabilities, ModelFamily
from gen_jax.models.state import ModelState


def split_variables(variables) -> tuple[dict, dict]:
  """Flax variables -> (params, other collections such as batch_stats or spectral-norm vectors)."""
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables


class Networks:
  """Applies a Flax module with its non-parameter collections, returning updated collections in train mode.

  With a mixed-precision `policy` (see `gen_jax/models/precision.py`), parameters, collections and inputs are
  cast to the compute dtype, outputs come back as float32 and updated collections are stored as float32.
  The default policy (float32) applies the module exactly as given.
  """

  def __init__(self, module, policy: precision_lib.Precision = precision_lib.FLOAT32):
    self.module = module
    self.policy = policy

  def with_policy(self, policy: precision_lib.Precision) -> "Networks":
    """The same module applied under another precision policy."""
    return Networks(self.module, policy)

  def __call__(self, params, collections, *args, train: bool):
    p = self.policy
    variables = {"params": p.cast_to_compute(params), **p.cast_collections_to_compute(collections)}
    args = p.cast_to_compute(args)
    if train and collections:
      out, updated = self.module.apply(variables, *args, train=True, mutable=list(collections.keys()))
      return p.cast_to_output(out), p.cast_collections_to_storage(dict(updated))
    return p.cast_to_output(self.module.apply(variables, *args, train=train)), collections


class GanFamily(ModelFamily):
  name = "gan"
  sampled_model = "generator"
  progress_metrics = ("d_loss", "g_loss")

  # --- config: this family's defaults and rules (gen_jax.config asks them at start-up) ----------------
  @classmethod
  def add_defaults(cls, config):
    """The GAN sections. config.optimizer is the generator's, config.d_optimizer the discriminator's: two
    time-scale learning rates (Heusel et al. 2017) are two lrs."""
    import ml_collections  # noqa: PLC0415
    from gen_jax import schema  # noqa: PLC0415
    c = config
    c.model.family = "gan"
    c.model.arch = "dcgan"            # mlp (2-D toy data) | dcgan | resnet (SNGAN)
    c.model.latent_dim = 100
    c.model.g_width = 64              # generator base channels (dcgan/resnet)
    c.model.d_width = 64              # discriminator base channels
    c.model.hidden = (128, 128, 128)  # mlp widths (toy)
    c.model.activation = "relu"
    c.model.spectral_norm = False     # spectral normalization in D (Miyato et al. 2018)
    c.model.conditional = False       # conditional batch norm in G + projection discriminator
    c.model.feature_layer = -1        # D layer whose features the VAE-GAN compares
    c.model.d_layout = "halve"        # resnet D: halve | sngan (halve to 8x8, two blocks there; Miyato et al.)
    c.gan = ml_collections.ConfigDict()
    c.gan.loss = "nonsaturating"      # minimax | nonsaturating | wasserstein | hinge | lsgan
    c.gan.n_critic = 1                # D steps per G step (each on its own real batch)
    c.gan.gp_weight = 0.0             # WGAN-GP lambda (10 in Gulrajani et al. 2017)
    c.gan.r1_weight = 0.0             # R1 gamma (Mescheder et al. 2018); adds gamma/2 * E||grad D(x)||^2
    c.gan.clip_value = 0.0            # WGAN weight clipping c (0.01 in Arjovsky et al. 2017)
    c.optimizer = schema.optimizer(2e-4)     # Radford et al. 2016: Adam 2e-4, beta1 0.5
    c.d_optimizer = schema.optimizer(2e-4)
    c.data.name = "mnist"
    c.data.batch_size = 64
    c.train.ema_decay = 0.999         # EMA generator for sampling and evaluation
    c.train.num_steps = 10_000
    c.train.eval_every = 1_000        # Frechet distance (or mode counts) of 2000 samples: the stability curve
    c.train.sample_every = 1_000
    c.train.checkpoint_every = 2_000
    return c

  @classmethod
  def validate_config(cls, config):
    """The archs a GAN builds, its sections, and no VAE-only objective settings."""
    from gen_jax import config as config_lib  # noqa: PLC0415 (same layer; imported late: config asks us)
    from gen_jax.nets.gan import GAN_ARCHS  # noqa: PLC0415
    return config_lib.check_adversarial_family(config, GAN_ARCHS, ("gan", "d_optimizer"))


  def __init__(self, config, dataset):
    self.config = config
    self.data_shape = tuple(dataset.image_shape)
    self.is_image = len(self.data_shape) == 3
    self.num_classes = dataset.num_classes
    self.conditional = bool(config.model.conditional)
    generator, discriminator = build_gan(config.model, self.data_shape, dataset.num_classes)
    self.generator, self.discriminator = Networks(generator), Networks(discriminator)   # float32: sampling, eval
    # The same networks in the training compute dtype (config.train.compute_dtype), used inside the losses.
    self.precision = precision_lib.from_config(config)
    self.g_train = self.generator.with_policy(self.precision)
    self.d_train = self.discriminator.with_policy(self.precision)
    gc = config.gan
    self.loss_kind = gc.loss
    self.n_critic = int(gc.n_critic)
    self.gp_weight = float(gc.gp_weight)
    self.r1_weight = float(gc.r1_weight)
    self.clip_value = float(gc.clip_value)
    self.batch_size = int(config.data.batch_size)
    self.latent_dim = int(config.model.latent_dim)
    num_steps = optim.schedule_horizon(config)
    self.g_tx = optim.make_optimizer(config.optimizer, num_steps)
    self.d_tx = optim.make_optimizer(config.d_optimizer, num_steps * self.n_critic)
    self.ema_decay = float(config.train.ema_decay)

  @classmethod
  def capabilities_for(cls, config) -> Capabilities:
    return Capabilities(can_sample=True, has_encoder=False, has_likelihood=False, has_discriminator=True,
                        conditional=bool(config.model.conditional), batches_per_step=int(config.gan.n_critic))

  @property
  def capabilities(self) -> Capabilities:
    return self.capabilities_for(self.config)

  # --- data space --------------------------------------------------------------------------
  def to_gan_space(self, x):
    return x * 2.0 - 1.0 if self.is_image else x

  def from_gan_space(self, x):
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0) if self.is_image else x

  def labels_for(self, y):
    return y if self.conditional else None

  def prior(self, key, n):
    return jax.random.normal(key, (n, self.latent_dim))

  # --- trainer interface --------------------------------------------------------------------
  def init_models(self, key, example_batch):
    k_g, k_d, k_z = jax.random.split(key, 3)
    x = self.to_gan_space(example_batch["image"][:self.batch_size])
    y = self.labels_for(example_batch["label"][:self.batch_size])
    z = self.prior(k_z, x.shape[0])
    g_params, g_coll = split_variables(self.generator.module.init(k_g, z, y, train=False))
    d_params, d_coll = split_variables(self.discriminator.module.init(k_d, x, y, train=False))
    return {"generator": ModelState.create(g_params, self.g_tx, ema=self.ema_decay > 0, collections=g_coll),
            "discriminator": ModelState.create(d_params, self.d_tx, collections=d_coll)}

  def critic_fn(self, d_params, d_coll, y):
    """x -> D scores [N], evaluation mode (no statistics updated), compute dtype: used for penalties."""
    return lambda x: self.d_train(d_params, d_coll, x, self.labels_for(y), train=False)[0][0]

  def discriminator_step(self, gen: ModelState, disc: ModelState, x, y, key):
    k_z, k_gp = jax.random.split(key)
    fake, _ = self.g_train(gen.params, gen.collections, self.prior(k_z, x.shape[0]), self.labels_for(y), train=True)
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(d_params):
      (real_logits, _), coll = self.d_train(d_params, disc.collections, x, self.labels_for(y), train=True)
      (fake_logits, _), coll = self.d_train(d_params, coll, fake, self.labels_for(y), train=True)
      loss = gan_objective.discriminator_loss(self.loss_kind, real_logits, fake_logits)
      aux = dict(gan_objective.d_output_stats(self.loss_kind, real_logits, fake_logits))
      aux["d_adversarial_loss"] = loss
      critic = self.critic_fn(d_params, coll, y)
      if self.gp_weight > 0:
        gp, _ = gan_objective.gradient_penalty(critic, x, fake, k_gp)
        loss = loss + self.gp_weight * gp
        aux["gradient_penalty"] = gp
      if self.r1_weight > 0:
        r1 = gan_objective.r1_penalty(critic, x)
        loss = loss + 0.5 * self.r1_weight * r1
        aux["r1_penalty"] = r1
      aux["d_loss"] = loss
      return loss, (aux, coll)

    (_, (aux, coll)), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
    aux["d_grad_norm"] = optax.tree.norm(grads)
    disc = disc.apply_gradients(grads, self.d_tx, collections=coll, after=aux["d_grad_norm"])
    if self.clip_value > 0:
      disc = disc.replace(params=gan_objective.clip_weights(disc.params, self.clip_value))
    return disc, aux

  def generator_step(self, gen: ModelState, disc: ModelState, y, key, step=0):
    z = self.prior(key, y.shape[0])

    def loss_fn(g_params):
      fake, coll = self.g_train(g_params, gen.collections, z, self.labels_for(y), train=True)
      (logits, _), _ = self.d_train(disc.params, disc.collections, fake, self.labels_for(y), train=False)
      return gan_objective.generator_loss(self.loss_kind, logits), (coll, fake)

    (loss, (coll, fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
    grad_norm = optax.tree.norm(grads)
    gen = gen.apply_gradients(grads, self.g_tx, self.ema_decay, collections=coll, after=grad_norm, ema_step=step)
    return gen, {"g_loss": loss, "g_grad_norm": grad_norm}, fake

  def update_models(self, models, batch, key, step):
    gen, disc = models["generator"], models["discriminator"]
    shape = (self.n_critic, self.batch_size)
    xs = self.to_gan_space(batch["image"]).reshape(shape + batch["image"].shape[1:])
    ys = batch["label"].reshape(shape)

    def critic_body(disc, inputs):
      i, x, y = inputs
      return self.discriminator_step(gen, disc, x, y, jax.random.fold_in(key, i))

    # The critic steps are unrolled at trace time, not run by lax.scan: XLA:CPU runs convolutions inside a
    # while loop several times slower than outside one (NOTES.md, "Loops and convolutions"). n_critic is
    # small (1-5), so the compile time it adds is small too.
    per_step = []
    for i in range(self.n_critic):
      disc, aux = critic_body(disc, (i, xs[i], ys[i]))
      per_step.append(aux)
    metrics = {k: jnp.mean(jnp.stack([m[k] for m in per_step])) for k in per_step[0]}
    gen, g_metrics, fake = self.generator_step(gen, disc, ys[-1], jax.random.fold_in(key, self.n_critic), step)
    metrics.update(g_metrics)
    metrics["sample_diversity"] = gan_objective.sample_diversity(fake, xs[-1])
    return {"generator": gen, "discriminator": disc}, metrics

  # --- sampling, images, evaluation -----------------------------------------------------------
  def sample(self, models, key, n: int, labels=None):
    """n samples in data space ([0, 1] images or 2-D points) from the (EMA) generator."""
    gen = models["generator"]
    if labels is None:
      labels = jnp.arange(n, dtype=jnp.int32) % (self.num_classes or 1)
    out, _ = self.generator(gen.eval_params(), gen.collections, self.prior(key, n), self.labels_for(labels),
                            train=False)
    return self.from_gan_space(out)

  def apply_sampled_train(self, params, collections, z, labels):
    return self.generator(params, collections, z, self.labels_for(labels), train=True)[1]

  def decode(self, models, z, labels):
    gen = models["generator"]
    out, _ = self.generator(gen.eval_params(), gen.collections, z, self.labels_for(labels), train=False)
    return self.from_gan_space(out)

  def discriminate(self, models, x, labels):
    disc = models["discriminator"]
    x = self.to_gan_space(x)
    (logits, _), _ = self.discriminator(disc.params, disc.collections, x, self.labels_for(labels), train=False)
    return jnp.reshape(logits, (x.shape[0],))

  def visualize(self, models, batch, key, num: int = 64, interp_pairs: int = 8, interp_steps: int = 10):
    if not self.is_image:
      return {"samples": self.sample(models, key, 2000)}
    gen = models["generator"]
    out = {"samples": self.sample(models, key, num)}
    z = self.prior(jax.random.fold_in(key, 1), 2 * interp_pairs)
    labels = jnp.repeat(jnp.arange(interp_pairs, dtype=jnp.int32) % (self.num_classes or 1), interp_steps)
    for kind, spherical in (("interpolation_linear", False), ("interpolation_spherical", True)):
      path = self.interpolate(z[:interp_pairs], z[interp_pairs:], interp_steps, spherical).reshape(-1, self.latent_dim)
      imgs, _ = self.generator(gen.eval_params(), gen.collections, path, self.labels_for(labels), train=False)
      out[kind] = self.from_gan_space(imgs)
    return out

  def visualize_layout(self) -> dict[str, int]:
    cols = self.num_classes if (self.conditional and self.num_classes and self.num_classes <= 10) else 8
    return {"samples": cols, "interpolation_linear": 10, "interpolation_spherical": 10}
