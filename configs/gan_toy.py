"""GANs on 2-D Gaussian mixtures, the standard mode-collapse test (Metz et al. 2017; PacGAN).

  --config=configs/gan_toy.py            8 Gaussians on a ring
  --config=configs/gan_toy.py:grid       25 Gaussians on a 5x5 grid
  add an objective token: r1 (default: non-saturating + R1 penalty, gamma 0.1) | nonsaturating (no penalty) |
  minimax | wgan | wgan_gp | hinge | lsgan
The default (fixed seed 0) covers all 8 ring modes in 5000 steps, about 20 CPU seconds; the plain
non-saturating GAN drops modes (6 of 8 at the same budget), the textbook failure. The grid runs 15000
generator steps (6000 for the n_critic=5 variants: Wasserstein and hinge); results/grid25_modes.md compares them.
eval.py writes modes_covered and high_quality_fraction (samples within 3 std of a mode).
"""
from gen_jax import schema

OBJECTIVES = ("r1", "nonsaturating", "minimax", "wgan", "wgan_gp", "hinge", "lsgan")


def get_config(variant: str = ""):
  c = schema.for_family("gan")
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  unknown = tokens - set(OBJECTIVES) - {"ring", "grid", "runlocal"}
  if unknown:
    raise ValueError(f"configs/gan_toy.py: unknown variant(s) {sorted(unknown)}; use ring, grid, "
                     f"{', '.join(OBJECTIVES)}, runlocal")
  c.data.name = "grid25" if "grid" in tokens else "ring8"
  c.data.batch_size = 256
  c.model.arch = "mlp"
  c.model.latent_dim = 16
  c.model.hidden = (128, 128, 128)
  c.optimizer = schema.optimizer(1e-3, b1=0.5, b2=0.999)
  c.d_optimizer = schema.optimizer(1e-3, b1=0.5, b2=0.999)
  c.optimizer.schedule = c.d_optimizer.schedule = "cosine"
  c.gan.r1_weight = 0.1
  c.train.num_steps = 5_000
  c.train.log_every = 100
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  c.train.ema_decay = 0.0
  c.eval.num_samples = 2500     # the protocol of results/grid25_modes.md
  c.train.eval_samples = 2500   # ... also for the mode counts logged during training (every 1000 steps)
  c.eval.suites = ("modes",)    # image metrics do not apply to 2-D points
  if tokens & (set(OBJECTIVES) - {"r1"}):
    c.gan.r1_weight = 0.0       # the other objectives are run as published, without R1
  if "minimax" in tokens:
    c.gan.loss = "minimax"
  if "lsgan" in tokens:
    c.gan.loss = "lsgan"
  if "hinge" in tokens:
    # A Lipschitz-constrained critic, trained like WGAN-GP's (n_critic 5, beta2 0.9); with n_critic 1 it
    # collapsed onto one blob of the grid (1 of 25 modes).
    c.gan.loss, c.model.spectral_norm, c.gan.n_critic = "hinge", True, 5
    c.optimizer.b2 = c.d_optimizer.b2 = 0.9
    c.train.num_steps = 2_000
  if "wgan" in tokens:
    c.gan.loss, c.gan.clip_value, c.gan.n_critic = "wasserstein", 0.01, 5
    c.optimizer = schema.optimizer(5e-4, name="rmsprop")
    c.d_optimizer = schema.optimizer(5e-4, name="rmsprop")
    c.train.num_steps = 2_000
  if "wgan_gp" in tokens:
    c.gan.loss, c.gan.gp_weight, c.gan.n_critic = "wasserstein", 0.1, 5
    c.optimizer = schema.optimizer(1e-3, b1=0.5, b2=0.9)
    c.d_optimizer = schema.optimizer(1e-3, b1=0.5, b2=0.9)
    c.train.num_steps = 2_000   # 5 critic steps each: 10k discriminator updates
  if "grid" in tokens:          # 25 modes need a longer budget: ~2 CPU minutes at n_critic 1
    c.train.num_steps = 6_000 if c.gan.n_critic > 1 else 15_000
    c.train.checkpoint_every = c.train.sample_every = 5_000
  if "runlocal" in tokens:
    c.train.num_steps, c.train.log_every, c.train.checkpoint_every, c.train.sample_every = 50, 10, 25, 50
  return c
