"""The MNIST study: five families, three seeds, equal training images seen.

  python -m gen_jax.study studies/mnist.py --out results/study_mnist          2-core CPU budget (variant cpu)
  python -m gen_jax.study studies/mnist.py:full --out results/study_mnist_full   accelerator budget

cpu: 320,000 training images per run (5000 steps at batch 64 for the GANs and the VAE-GAN, 3200 at batch 100 for
the VAEs), GAN networks at width 32; full: 6,400,000 images (100,000 GAN steps, 64,000 VAE steps), widths 64.
How the CPU budget was sized: README, "Studies". The body is studies/_common.py's grey_study.
"""
from studies import _common as c


def get_config(variant: str = "cpu"):
  return c.grey_study("mnist", "mnist", variant,
                      "conv VAE, conditional VAE, DCGAN, hinge+SN GAN and VAE-GAN on grey MNIST at equal images seen")
