"""gen_jax: train, evaluate and compare VAEs, GANs and VAE-GAN hybrids in JAX/Flax."""

__version__ = "0.1.0"
