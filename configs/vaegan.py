"""VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction is measured in the discriminator's features.

  --config=configs/vaegan.py               MNIST (grey), DCGAN decoder/discriminator, conv encoder
  --config=configs/vaegan.py:conditional   class label into encoder, decoder (cBN) and discriminator (projection)
  --config=configs/vaegan.py:fashion       Fashion-MNIST
  --config=configs/vaegan.py:cifar10       CIFAR-10, 32x32 colour (DCGAN decoder / discriminator at 32x32x3)
"""
from gen_jax import schema


def get_config(variant: str = ""):
  c = schema.for_family("vaegan")
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  unknown = tokens - {"conditional", "fashion", "cifar10", "runlocal"}
  if unknown:
    raise ValueError(f"configs/vaegan.py: unknown variant(s) {sorted(unknown)}; use conditional, fashion, cifar10, "
                     "runlocal")
  c.optimizer = schema.optimizer(3e-4, b1=0.5)
  c.d_optimizer = schema.optimizer(3e-4, b1=0.5)
  if "conditional" in tokens:
    c.model.conditional = True
  if "fashion" in tokens:
    c.data.name = "fashion_mnist"
  if "cifar10" in tokens:
    c.data.name = "cifar10"
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
