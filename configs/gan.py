"""GANs on images. Default: DCGAN, non-saturating loss, MNIST (Radford et al. 2016; Goodfellow et al. 2014).

Variant tokens (combine with commas, e.g. configs/gan.py:resnet,fashion):
  objective:  minimax (saturating G loss) | wgan (weight clipping, RMSprop, n_critic 5) |
              wgan_gp (gradient penalty 10, Adam 1e-4 (0, 0.9), n_critic 5) | hinge (+ spectral norm) |
              lsgan | r1 (non-saturating + R1 penalty gamma 10)
  architecture: dcgan (default) | resnet (SNGAN: ResNet, spectral norm, hinge, n_critic 5, two time-scale
              rates Adam 1e-4 G / 4e-4 D (Heusel et al.)) |
              sngan (resnet with the CIFAR-10 setting of Miyato et al. / Mimicry: G 256 / D 128 channels,
              D halving to 8x8 then two blocks at 8x8, z 128, Adam 2e-4 (0, 0.9) for G and D falling linearly
              to 0, n_critic 5, batch 64, 100k G steps. Unlike Mimicry, the EMA generator (the GAN default) is
              what is sampled and evaluated; the training-time curve also records the raw weights)
  conditioning: conditional (conditional batch norm in G + projection discriminator)
  data:       fashion (Fashion-MNIST) | stacked (Stacked MNIST, 1000 modes) | folder (your images in data.path) |
              cifar10 (32x32 colour, 10 classes)
  runlocal:   seconds-long smoke run
"""
from gen_jax import schema

OBJECTIVES = ("minimax", "wgan", "wgan_gp", "hinge", "lsgan", "r1")
TOKENS = OBJECTIVES + ("dcgan", "resnet", "sngan", "conditional", "fashion", "stacked", "folder", "cifar10",
                       "runlocal")


def get_config(variant: str = ""):
  c = schema.for_family("gan")
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  unknown = tokens - set(TOKENS)
  if unknown:
    raise ValueError(f"configs/gan.py: unknown variant(s) {sorted(unknown)}; use {', '.join(TOKENS)}")
  if "minimax" in tokens:
    c.gan.loss = "minimax"
  if "lsgan" in tokens:
    c.gan.loss = "lsgan"
  if "r1" in tokens:
    c.gan.r1_weight = 10.0
  if "wgan" in tokens:
    c.gan.loss, c.gan.clip_value, c.gan.n_critic = "wasserstein", 0.01, 5
    c.optimizer = schema.optimizer(5e-5, name="rmsprop")
    c.d_optimizer = schema.optimizer(5e-5, name="rmsprop")
  if "wgan_gp" in tokens:
    c.gan.loss, c.gan.gp_weight, c.gan.n_critic = "wasserstein", 10.0, 5
    c.optimizer = schema.optimizer(1e-4, b1=0.0, b2=0.9)
    c.d_optimizer = schema.optimizer(1e-4, b1=0.0, b2=0.9)
  if "hinge" in tokens:
    c.gan.loss, c.model.spectral_norm = "hinge", True
  if "resnet" in tokens:
    c.model.arch, c.model.spectral_norm, c.gan.loss, c.gan.n_critic = "resnet", True, "hinge", 5
    c.model.g_width = c.model.d_width = 128
    c.model.latent_dim = 128
    c.optimizer = schema.optimizer(1e-4, b1=0.0, b2=0.9)
    c.d_optimizer = schema.optimizer(4e-4, b1=0.0, b2=0.9)   # two time-scale update rule
  if "sngan" in tokens:   # Mimicry's SNGAN on CIFAR-10 (Lee & Town 2020), after Miyato et al. 2018
    c.model.arch, c.model.spectral_norm, c.gan.loss, c.gan.n_critic = "resnet", True, "hinge", 5
    c.model.g_width, c.model.d_width, c.model.latent_dim = 256, 128, 128
    c.model.d_layout = "sngan"       # D: two halving blocks to 8x8, two blocks at 8x8
    c.optimizer = schema.optimizer(2e-4, b1=0.0, b2=0.9)
    c.d_optimizer = schema.optimizer(2e-4, b1=0.0, b2=0.9)
    c.optimizer.schedule = c.d_optimizer.schedule = "linear"   # to 0 at the last step, as Mimicry
    c.data.batch_size = 64
    c.train.num_steps = 100_000      # generator steps
    c.train.checkpoint_every = c.train.eval_every = c.train.sample_every = 5_000
  if "conditional" in tokens:
    c.model.conditional = True
  if "fashion" in tokens:
    c.data.name = "fashion_mnist"
  if "stacked" in tokens:
    c.data.name = "stacked_mnist"
  if "folder" in tokens:
    c.data.name = "image_folder"
  if "cifar10" in tokens:
    c.data.name = "cifar10"
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
