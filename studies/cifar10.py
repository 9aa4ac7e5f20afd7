"""The CIFAR-10 study: conv VAE, DCGAN, SNGAN, WGAN-GP and VAE-GAN at 32x32 colour, three seeds, equal images seen.

  python -m gen_jax.study studies/cifar10.py --out results/study_cifar10              2-core CPU budget (cpu)
  python -m gen_jax.study studies/cifar10.py:full --out results/study_cifar10_full    accelerator budget (full)

Needs the CIFAR-10 feature classifier in classifiers/cifar10 (sample quality, path length and the training-time
curve are measured in its features): without it the study stops before training and names the command that trains
it. Budget rule 'images': every run draws the same number of real training images; a GAN step with n_critic
critic steps draws n_critic batches (gen_jax.jobs.study.images_per_step), so SNGAN and WGAN-GP (n_critic 5) make a
fifth of the generator steps of DCGAN and the VAE-GAN. The training-time curve is measured at the same images seen
for every entry (CURVE_IMAGES), so the curves of one plot line up.

cpu: 204,800 images per run (DCGAN and VAE-GAN 3200 steps at batch 64, SNGAN and WGAN-GP 640 generator steps, conv
VAE 2048 steps at batch 100), every GAN network at width 32 (SNGAN's 256/128, DCGAN's 64 reduced); about 1.9 hours
per seed on the 2-core CPU (seed 0 measured, evaluation about 40% of it); the 15 runs took 6.3 hours (NOTES.md).
full: 16,000,000 images (SNGAN and WGAN-GP 50,000 generator steps, DCGAN and VAE-GAN 250,000, conv VAE 160,000),
the configs' widths (SNGAN 256/128 as Mimicry, the others 64), the full evaluation, plus the conditional DCGAN
(projection D; 18 runs), whose classification accuracy score ('cas') only the full evaluation measures.
"""
from studies import _common as c

IMAGES = {"cpu": 204_800, "full": 16_000_000}
CURVE_IMAGES = {"cpu": 25_600, "full": 640_000}     # training-time curve: 8 points (cpu), 25 points (full)
# Checkpoints at equal images seen too: a run with n_critic 5 makes a fifth of the steps, and a step-based period
# (train.checkpoint_every=1000) would give the 640-step CPU runs no checkpoint before the end.
CHECKPOINT_IMAGES = {"cpu": 51_200, "full": 320_000}
# The colour VAEs' likelihood protocol (configs/vae.py:conv,cifar10): k = 100 on a seeded 2000-image test subset.
CPU_EVAL = tuple(e for e in c.CPU_EVAL if not e.startswith("eval.num_examples=")) + ("eval.num_examples=2000",)


def _curve(variant: str, images_per_step: int) -> tuple[str, str]:
  """The curve and checkpoint periods in steps of an entry drawing `images_per_step` real images per step."""
  return (f"train.eval_every={CURVE_IMAGES[variant] // images_per_step}",
          f"train.checkpoint_every={CHECKPOINT_IMAGES[variant] // images_per_step}")


def colour_entries(variant: str) -> tuple:
  """The entries at `variant`'s widths; each names its curve period in steps (images per step: GAN and VAE-GAN
  batch 64 times n_critic, VAE batch 100)."""
  full = variant == "full"
  w = () if full else ("model.g_width=32", "model.d_width=32")
  entries = (
      # conv VAE (64, 128 channels, 64 latents), discretized logistic likelihood, bits/dim
      c.entry("conv_vae", "configs/vae.py:conv,cifar10", *_curve(variant, 100)),
      # DCGAN (Radford et al. 2016), non-saturating loss, EMA generator
      c.entry("dcgan", "configs/gan.py:cifar10", *w, *_curve(variant, 64)),
      # SNGAN, the Mimicry CIFAR-10 setting: ResNet G/D (D 8x8 blocks), SN, hinge, n_critic 5, Adam 2e-4 -> 0
      c.entry("sngan", "configs/gan.py:cifar10,sngan", *w, *_curve(variant, 320)),
      # WGAN-GP (Gulrajani et al. 2017): DCGAN networks, gradient penalty 10, n_critic 5, Adam 1e-4 (0, 0.9)
      c.entry("wgan_gp", "configs/gan.py:cifar10,wgan_gp", *w, *_curve(variant, 320)),
      # VAE-GAN (Larsen et al. 2016), DCGAN decoder / discriminator
      c.entry("vaegan", "configs/vaegan.py:cifar10", *w, *(() if full else ("model.features=(32,64)",)),
              *_curve(variant, 64)),
  )
  if full:   # conditional DCGAN: conditional batch norm in G, projection D
    entries += (c.entry("cdcgan", "configs/gan.py:cifar10,conditional", *_curve(variant, 64)),)
  return entries


def get_config(variant: str = "cpu"):
  variant = c.check_variant("studies/cifar10.py", variant)
  full = variant == "full"
  return c.study(
      "cifar10", datasets=("cifar10",), seeds=(0, 1, 2), entries=colour_entries(variant), rule="images",
      images=IMAGES[variant],
      eval_overrides=c.FULL_EVAL if full else CPU_EVAL,
      train_overrides=c.FULL_TRAIN if full else c.CPU_TRAIN,
      description=("conv VAE, DCGAN, SNGAN, WGAN-GP and VAE-GAN" + (", conditional DCGAN" if full else "")
                   + " on CIFAR-10 32x32 colour at equal images seen"))
