"""Model-family registry: `config.model.family` -> the class that binds nets, objective and optimizer."""
from __future__ import annotations

from gen_jax.errors import ConfigError


def build_family(config, dataset):
  name = config.model.family
  if name == "vae":
    from gen_jax.train.vae_step import VaeFamily
    return VaeFamily(config, dataset)
  raise ConfigError(f"config.model.family={name!r} is not valid; choose one of: vae")
