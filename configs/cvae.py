"""Conditional VAE (Sohn et al. 2015): the class label goes into encoder and decoder.

  --config=configs/cvae.py           MLP, dynamically binarized MNIST
  --config=configs/cvae.py:fashion   conv, Fashion-MNIST, discretized logistic likelihood
Sample grids show one class per column.
"""
from gen_jax import schema


def get_config(variant: str = ""):
  c = schema.base()
  tokens = {t.strip() for t in variant.split(",") if t.strip()}
  unknown = tokens - {"fashion", "runlocal"}
  if unknown:
    raise ValueError(f"configs/cvae.py: unknown variant(s) {sorted(unknown)}; use fashion, runlocal")
  c.model.conditional = True
  c.model.latent_dim = 16
  c.model.hidden = (400, 400)
  c.model.activation = "relu"
  if "fashion" in tokens:
    c.data.name = "fashion_mnist"
    c.model.arch = "conv"
    c.model.likelihood = "logistic"
    c.eval.chunk_size = 4             # conv decoder: bounds the NLL estimate's memory (see configs/vae.py)
  return schema.apply_variant(c, "runlocal" if "runlocal" in tokens else "")
