"""Model-family registry: `config.model.family` -> the class that binds nets, objective and optimizers."""
from __future__ import annotations

from gen_jax.errors import ConfigError

FAMILIES = ("vae", "gan", "vaegan")


def build_family(config, dataset):
  name = config.model.family
  if name == "vae":
    from gen_jax.models.vae import VaeFamily
    return VaeFamily(config, dataset)
  if name == "gan":
    from gen_jax.models.gan import GanFamily
    return GanFamily(config, dataset)
  if name == "vaegan":
    from gen_jax.models.vaegan import VaeGanFamily
    return VaeGanFamily(config, dataset)
  raise ConfigError(f"config.model.family={name!r} is not valid; choose one of: {', '.join(FAMILIES)}")
