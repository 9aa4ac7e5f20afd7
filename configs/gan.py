"""GANs on images. Default: DCGAN, non-saturating loss, MNIST (Radford et al. 2016; Goodfellow et al. 2014).

Variant tokens (combine with commas, e.g. configs/gan.py:resnet,fashion):
  objective:  minimax (saturating G loss) | wgan (weight clipping, RMSprop, n_critic 5) |
              wgan_gp (gradient penalty 10, Adam 1e-4 (0, 0.9), n_critic 5) | hinge (+ spectral norm) |
              lsgan | r1 (non-saturating + R1 penalty gamma 10)
  architecture: dcgan (default) | resnet (SNGAN: ResNet, spectral norm, hinge, n_critic 5, TTUR)
  conditioning: conditional (conditional batch norm in G + projection discriminator)
  data:       fashion (Fashion-MNIST) | stacked (Stacked MNIST, 1000 modes) | folder (your images in data.path)
  runlocal:   seconds-long smoke run
"""
from gen_jax import schema

OBJECTIVES = ("minimax", "wgan", "wgan_gp", "hinge", "lsgan", "r1")
TOKENS = OBJECTIVES + ("dcgan", "resnet", "conditional", "fashion", "stacked", "folder", "runlocal")


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
  if "conditional" in tokens:
    c.model.conditional = True
  if "fashion" in tokens:
    c.data.name = "fashion_mnist"
  if "stacked" in tokens:
    c.data.name = "stacked_mnist"
  if "folder" in tokens:
    c.data.name = "image_folder"
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
