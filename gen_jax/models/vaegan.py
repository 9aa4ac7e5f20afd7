"""The VAE-GAN family (Larsen, Sønderby, Larochelle, Winther 2016) on the shared trainer.

Three train states: 'encoder', 'decoder' (the generator) and 'discriminator'.
One forward pass computes every term of Algorithm 1; each network's gradient
is taken from its own loss only (one `jax.vjp`, three cotangents):

  encoder       <- prior (KL) + llike            (llike: Gaussian in D's l-th layer features)
  decoder       <- gamma * llike + GAN generator term (on reconstructions and prior samples)
  discriminator <- GAN discriminator loss (real vs reconstructions and prior samples)

The loss formulas, with the sign convention explained, are in
`gen_jax/objectives/vaegan.py`. Images are mapped to [-1, 1].

With `train.ema_decay` > 0 the encoder keeps EMA parameters like the decoder (same decay and warm-up), so that
evaluation encodes and decodes with two networks averaged over the same updates, and `raw_models` drops both
averages (the raw pair the encoder was trained with). The EMA decoder's batch-norm statistics are the family
protocol's standing statistics on prior draws: right for samples; reconstructions and imputations decode posterior
latents, which those statistics fit less well (NOTES.md, "Imputation: Metropolis-within-Gibbs").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from gen_jax.nets.conv import ConvEncoder
from gen_jax.nets.gan import build_gan
from gen_jax.objectives import distributions
from gen_jax.objectives import vaegan as vaegan_objective
from gen_jax.models import optim
from gen_jax.models import precision as precision_lib
from gen_jax.models.gan import Networks, split_variables
from gen_jax.models.family import Capabilities, ModelFamily
from gen_jax.models.state import ModelState


class VaeGanFamily(ModelFamily):
  name = "vaegan"
  sampled_model = "decoder"
  progress_metrics = ("enc_loss", "dec_loss", "dis_loss")

  # --- config: this family's defaults and rules (gen_jax.config asks them at start-up) ----------------
  ARCHS = ("dcgan", "resnet")   # image GAN archs: the decoder is the generator, the encoder a conv net

  @classmethod
  def add_defaults(cls, config):
    """The GAN's sections, plus the encoder's widths and the VAE-GAN weights."""
    import ml_collections  # noqa: PLC0415
    from gen_jax.models.gan import GanFamily  # noqa: PLC0415
    c = GanFamily.add_defaults(config)
    c.model.family = "vaegan"
    c.model.features = (64, 128)      # encoder convs
    c.model.latent_dim = 32
    c.vaegan = ml_collections.ConfigDict()
    c.vaegan.gamma = 0.01             # weight of content (feature reconstruction) vs style (GAN) for the decoder
    c.vaegan.feature_sigma = 1.0      # std of the Gaussian on discriminator features
    # Dis_l: the second-to-last conv block, so a conv layer lies between the compared features and D's logit. At
    # the last block (-1, the GAN default) the logit is linear in exactly the features the encoder and decoder
    # match, and D could not tell reconstructions from data (NOTES.md, issue 19 part 3).
    c.model.feature_layer = -2
    return c

  @classmethod
  def validate_config(cls, config):
    """The archs a VAE-GAN builds, its sections, and no VAE-only objective settings."""
    from gen_jax import config as config_lib  # noqa: PLC0415 (same layer; imported late: config asks us)
    return config_lib.check_adversarial_family(config, cls.ARCHS, ("gan", "d_optimizer", "vaegan"))


  def __init__(self, config, dataset):
    self.config = config
    self.data_shape = tuple(dataset.image_shape)
    self.num_classes = dataset.num_classes
    self.conditional = bool(config.model.conditional)
    self.latent_dim = int(config.model.latent_dim)
    generator, discriminator = build_gan(config.model, self.data_shape, dataset.num_classes)
    self.encoder_module = ConvEncoder(features=tuple(config.model.features), latent_dim=self.latent_dim,
                                      activation=config.model.activation)
    self.decoder, self.discriminator = Networks(generator), Networks(discriminator)   # float32: sampling, eval
    # The same networks in the training compute dtype (config.train.compute_dtype), used inside the losses.
    self.precision = precision_lib.from_config(config)
    self.dec_train = self.decoder.with_policy(self.precision)
    self.dis_train = self.discriminator.with_policy(self.precision)
    num_steps = optim.schedule_horizon(config)
    self.tx = optim.make_optimizer(config.optimizer, num_steps)          # encoder and decoder
    self.d_tx = optim.make_optimizer(config.d_optimizer, num_steps)
    self.gamma = float(config.vaegan.gamma)
    self.feature_sigma = float(config.vaegan.feature_sigma)
    self.ema_decay = float(config.train.ema_decay)

  @classmethod
  def capabilities_for(cls, config) -> Capabilities:
    return Capabilities(can_sample=True, has_encoder=True, has_likelihood=False, has_discriminator=True,
                        conditional=bool(config.model.conditional), batches_per_step=1)

  @property
  def capabilities(self) -> Capabilities:
    return self.capabilities_for(self.config)

  def labels_for(self, y):
    return y if self.conditional else None

  def onehot(self, y):
    return jax.nn.one_hot(y, self.num_classes) if self.conditional else None

  def apply_encoder(self, params, x, y):
    """(mean, logvar) of q(z | x) for x in [-1, 1]."""
    return self.encoder_module.apply({"params": params}, x, self.onehot(y))

  def init_models(self, key, example_batch):
    k_e, k_g, k_d = jax.random.split(key, 3)
    x = example_batch["image"] * 2.0 - 1.0
    y = example_batch["label"]
    e_params = self.encoder_module.init(k_e, x, self.onehot(y))["params"]
    z = jnp.zeros((x.shape[0], self.latent_dim))
    g_params, g_coll = split_variables(self.decoder.module.init(k_g, z, self.labels_for(y), train=False))
    d_params, d_coll = split_variables(self.discriminator.module.init(k_d, x, self.labels_for(y), train=False))
    return {"encoder": ModelState.create(e_params, self.tx, ema=self.ema_decay > 0),
            "decoder": ModelState.create(g_params, self.tx, ema=self.ema_decay > 0, collections=g_coll),
            "discriminator": ModelState.create(d_params, self.d_tx, collections=d_coll)}

  def update_models(self, models, batch, key, step):
    enc, dec, dis = models["encoder"], models["decoder"], models["discriminator"]
    x = batch["image"] * 2.0 - 1.0
    y = batch["label"]
    k_eps, k_prior = jax.random.split(key)

    p = self.precision

    def forward(e_params, g_params, d_params):
      mean, logvar = p.wrap(self.apply_encoder)(e_params, x, y)
      kl = jnp.sum(distributions.gaussian_kl_to_standard(mean, logvar), axis=-1)
      z = distributions.reparameterize(k_eps, mean, logvar)[0]
      x_rec, g_coll = self.dec_train(g_params, dec.collections, z, self.labels_for(y), train=True)
      z_p = jax.random.normal(k_prior, mean.shape)
      x_p, g_coll = self.dec_train(g_params, g_coll, z_p, self.labels_for(y), train=True)
      (l_real, f_real), d_coll = self.dis_train(d_params, dis.collections, x, self.labels_for(y), train=True)
      (l_rec, f_rec), d_coll = self.dis_train(d_params, d_coll, x_rec, self.labels_for(y), train=True)
      (l_p, _), d_coll = self.dis_train(d_params, d_coll, x_p, self.labels_for(y), train=True)
      losses = vaegan_objective.vaegan_losses(
          kl=kl, feat_real=f_real, feat_recon=f_rec, logits_real=l_real, logits_recon=l_rec, logits_prior=l_p,
          gamma=self.gamma, feature_sigma=self.feature_sigma)
      out = jnp.stack([losses["encoder"], losses["decoder"], losses["discriminator"]])
      aux = {"losses": losses, "g_coll": g_coll, "d_coll": d_coll, "x_rec": x_rec,
             "d_real": jnp.mean(jax.nn.sigmoid(l_real)), "d_recon": jnp.mean(jax.nn.sigmoid(l_rec)),
             "d_prior": jnp.mean(jax.nn.sigmoid(l_p))}
      return out, aux

    _, vjp, aux = jax.vjp(forward, enc.params, dec.params, dis.params, has_aux=True)
    g_enc = vjp(jnp.array([1.0, 0.0, 0.0]))[0]
    g_dec = vjp(jnp.array([0.0, 1.0, 0.0]))[1]
    g_dis = vjp(jnp.array([0.0, 0.0, 1.0]))[2]
    norms = (optax.tree.norm(g_enc), optax.tree.norm(g_dec), optax.tree.norm(g_dis))
    new = {"encoder": enc.apply_gradients(g_enc, self.tx, self.ema_decay, after=norms, ema_step=step),
           "decoder": dec.apply_gradients(g_dec, self.tx, self.ema_decay, collections=aux["g_coll"], after=norms,
                                          ema_step=step),
           "discriminator": dis.apply_gradients(g_dis, self.d_tx, collections=aux["d_coll"], after=norms)}
    losses = aux["losses"]
    metrics = {"enc_loss": losses["encoder"], "dec_loss": losses["decoder"], "dis_loss": losses["discriminator"],
               "kl": losses["prior"], "llike": losses["llike"], "gan_d": losses["gan_d"], "gan_g": losses["gan_g"],
               "d_real": aux["d_real"], "d_recon": aux["d_recon"], "d_prior": aux["d_prior"],
               "recon_mse": jnp.mean(jnp.square((aux["x_rec"] - x) / 2.0)),
               "enc_grad_norm": norms[0], "dec_grad_norm": norms[1], "dis_grad_norm": norms[2]}
    return new, metrics

  # --- images and evaluation ----------------------------------------------------------------
  def apply_sampled_train(self, params, collections, z, labels):
    return self.decoder(params, collections, z, self.labels_for(labels), train=True)[1]

  def decode(self, models, z, y):
    dec = models["decoder"]
    out, _ = self.decoder(dec.eval_params(), dec.collections, z, self.labels_for(y), train=False)
    return jnp.clip((out + 1.0) / 2.0, 0.0, 1.0)

  def encode(self, models, x, labels):
    return self.apply_encoder(models["encoder"].eval_params(), x * 2.0 - 1.0, labels)

  def discriminate(self, models, x, labels):
    dis = models["discriminator"]
    (logits, _), _ = self.discriminator(dis.params, dis.collections, x * 2.0 - 1.0, self.labels_for(labels),
                                        train=False)
    return jnp.reshape(logits, (x.shape[0],))

  def reconstruct(self, models, x01, y):
    mean, _ = self.encode(models, x01, y)
    return self.decode(models, mean, y), mean

  def raw_models(self, models):
    """`models` with the EMA parameters of both the decoder and the encoder dropped: the raw, matched pair (the
    decoder then samples with the running batch-norm statistics its raw weights accumulated)."""
    models = super().raw_models(models)
    enc = models["encoder"]
    return models if enc.ema_params is None else {**models, "encoder": enc.replace(ema_params=None)}

  def visualize(self, models, batch, key, num: int = 64, interp_pairs: int = 8, interp_steps: int = 10):
    x, y = batch["image"], batch["label"]
    n = min(num, x.shape[0])
    labels = jnp.arange(num, dtype=jnp.int32) % (self.num_classes or 1)
    out = {"samples": self.decode(models, jax.random.normal(key, (num, self.latent_dim)), labels)}
    recon, mean = self.reconstruct(models, x[:n], y[:n])
    half = max(1, n // 2)
    out["reconstructions"] = jnp.stack([x[:half], recon[:half]], axis=1).reshape((2 * half,) + x.shape[1:])
    p = min(interp_pairs, n // 2)
    for kind, spherical in (("interpolation_linear", False), ("interpolation_spherical", True)):
      path = self.interpolate(mean[:p], mean[p:2 * p], interp_steps, spherical).reshape(-1, self.latent_dim)
      out[kind] = self.decode(models, path, jnp.repeat(y[:p], interp_steps))
    return out

  def visualize_layout(self) -> dict[str, int]:
    cols = self.num_classes if (self.conditional and self.num_classes and self.num_classes <= 10) else 8
    return {"samples": cols, "reconstructions": 8, "interpolation_linear": 10, "interpolation_spherical": 10}
