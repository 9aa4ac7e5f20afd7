"""beta-VAE (Higgins et al. 2017) with KL warm-up and optional free bits, conv nets on MNIST grey levels.

  --config=configs/beta_vae.py             beta = 4
  --config=configs/beta_vae.py:freebits    beta = 1 with 0.25 nats of free bits per latent
"""
from gen_jax import schema


def get_config(variant: str = ""):
  c = schema.base()
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  unknown = tokens - {"freebits", "runlocal"}
  if unknown:
    raise ValueError(f"configs/beta_vae.py: unknown variant(s) {sorted(unknown)}; use freebits, runlocal")
  c.data.name = "mnist"
  c.model.arch = "conv"
  c.model.latent_dim = 10
  c.model.activation = "relu"
  c.model.likelihood = "logistic"
  c.objective.beta = 4.0
  c.objective.kl_warmup_steps = 5_000
  if "freebits" in tokens:
    c.objective.beta = 1.0
    c.objective.free_bits = 0.25
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
