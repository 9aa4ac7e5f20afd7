"""A seconds-long study for the test suite: two runlocal entries, two seeds, MNIST, a few steps each."""
from studies import _common as c


def get_config(variant: str = ""):
  if variant:
    raise ValueError(f"studies/tiny.py has no variants (got {variant!r})")
  return c.study(
      "tiny", datasets=("mnist",), seeds=(0, 1),
      entries=(c.entry("vae", "configs/vae.py:grey,runlocal", "model.features=(8,16)", "model.latent_dim=4"),
               c.entry("gan", "configs/gan.py:runlocal", "model.g_width=8", "model.d_width=8",
                       "model.latent_dim=8")),
      rule="images", images=320,   # 8 VAE steps at batch 40, 8 GAN steps at batch 40
      eval_overrides=("eval.suites=('samples', 'likelihood')", "eval.num_samples=100", "eval.batch_size=100",
                      "eval.num_examples=40", "eval.num_importance_samples=4",
                      "eval.kid_subsets=2", "eval.kid_subset_size=50"),
      train_overrides=("train.eval_every=8", "train.eval_samples=100", "train.log_every=4",
                       "train.checkpoint_every=4", "train.sample_every=0"),
      description="test fixture")
