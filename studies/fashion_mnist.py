"""The Fashion-MNIST study: five families, three seeds, equal training images seen.

  python -m gen_jax.study studies/fashion_mnist.py --out results/study_fashion_mnist            2-core CPU (cpu)
  python -m gen_jax.study studies/fashion_mnist.py:full --out results/study_fashion_mnist_full  accelerator

cpu: 320,000 training images per run (5000 steps at batch 64 for the GANs and the VAE-GAN, 3200 at batch 100 for
the VAEs), GAN networks at width 32; full: 6,400,000 images (100,000 GAN steps, 64,000 VAE steps), widths 64.
How the CPU budget was sized: README, "Studies".
"""
from studies import _common as c

CPU_IMAGES = 320_000
FULL_IMAGES = 6_400_000


def get_config(variant: str = "cpu"):
  variant = variant or "cpu"
  if variant not in ("cpu", "full"):
    raise ValueError(f"studies/fashion_mnist.py: unknown variant {variant!r}; use cpu or full")
  full = variant == "full"
  return c.study(
      "fashion_mnist", datasets=("fashion_mnist",), seeds=(0, 1, 2),
      entries=c.image_entries(64 if full else 32), rule="images",
      images=FULL_IMAGES if full else CPU_IMAGES,
      eval_overrides=c.FULL_EVAL if full else c.CPU_EVAL,
      train_overrides=c.FULL_TRAIN if full else c.CPU_TRAIN,
      description="conv VAE, conditional VAE, DCGAN, hinge+SN GAN and VAE-GAN on Fashion-MNIST at equal images seen")
