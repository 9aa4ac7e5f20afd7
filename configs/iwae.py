"""IWAE (Burda et al. 2015) on dynamically binarized MNIST, 784-200-200-50 tanh.

  --config=configs/iwae.py:k5    k = 5 importance samples (default)
  --config=configs/iwae.py:k50   k = 50
  --config=configs/iwae.py:k5,dreg   the doubly reparameterized gradient (Tucker et al. 2019) instead of the
                                     reparameterized one: same bound, different encoder gradient
Learning-rate schedule as configs/vae.py: constant 1e-3, then a cosine down to 1e-4 over the last 30% of
config.train.num_steps. Burda's 3^i stages at 1e-3 * 10^(-i/7), one epoch per unit:
--config.optimizer.schedule=burda --config.optimizer.stage_steps=600.
"""
from gen_jax import schema


def get_config(variant: str = ""):
  c = schema.base()
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  k_tokens = {t for t in tokens if t.startswith("k") and t[1:].isdigit()}
  unknown = tokens - k_tokens - {"dreg", "runlocal"}
  if unknown or len(k_tokens) > 1:
    raise ValueError(f"configs/iwae.py: unknown or repeated variant(s) {sorted(unknown or k_tokens)}; use one kN "
                     "(k5, k50, ...), dreg, runlocal")
  k = int(next(iter(k_tokens))[1:]) if k_tokens else 5
  c.objective.name = "iwae"
  c.objective.num_samples = k
  if "dreg" in tokens:
    c.objective.gradient = "dreg"
  c.optimizer.eps = 1e-4
  c.optimizer.schedule = "constant_cosine"
  c.optimizer.decay_fraction = 0.3
  c.optimizer.final_lr_fraction = 0.1
  c.train.num_steps = 30_000
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
