"""The Fashion-MNIST study: five families, three seeds, equal training images seen.

  python -m gen_jax.study studies/fashion_mnist.py --out results/study_fashion_mnist            2-core CPU (cpu)
  python -m gen_jax.study studies/fashion_mnist.py:full --out results/study_fashion_mnist_full  accelerator

Budgets and widths as studies/mnist.py (studies/_common.py's grey_study).
"""
from studies import _common as c


def get_config(variant: str = "cpu"):
  return c.grey_study("fashion_mnist", "fashion_mnist", variant,
                      "conv VAE, conditional VAE, DCGAN, hinge+SN GAN and VAE-GAN on Fashion-MNIST "
                      "at equal images seen")
