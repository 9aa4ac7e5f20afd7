"""Model-family registry: `config.model.family` -> the `ModelFamily` class that implements it.

The built-in families are one line each ("module:Class", imported on first use so that naming a family does not
import every family's networks). `register(name, cls)` adds a family from anywhere (a test, a user module)
without editing this file.
"""
from __future__ import annotations

import importlib

from gen_jax.errors import ConfigError

_FAMILIES: dict[str, str | type] = {
    "vae": "gen_jax.models.vae:VaeFamily",
    "gan": "gen_jax.models.gan:GanFamily",
    "vaegan": "gen_jax.models.vaegan:VaeGanFamily",
}

BUILTIN_FAMILIES = tuple(_FAMILIES)


def register(name: str, cls: type) -> type:
  """Makes `config.model.family=name` build `cls` (a `gen_jax.models.family.ModelFamily` subclass); returns cls.
  Registering a name again replaces the earlier class."""
  from gen_jax.models.family import ModelFamily
  if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
    raise TypeError(f"register({name!r}, ...) needs a ModelFamily subclass; got {cls!r}")
  _FAMILIES[str(name)] = cls
  return cls


def family_names() -> tuple[str, ...]:
  """Every registered family name, built-in ones first."""
  return tuple(_FAMILIES)


def family_class(name: str) -> type:
  """The class registered under `name`; a ConfigError listing the registered names if there is none."""
  entry = _FAMILIES.get(name)
  if entry is None:
    raise ConfigError(f"config.model.family={name!r} is not a registered model family; choose one of: "
                      f"{', '.join(family_names())} (or register yours with gen_jax.models.registry.register)")
  if isinstance(entry, str):
    module, _, attr = entry.partition(":")
    entry = _FAMILIES[name] = getattr(importlib.import_module(module), attr)
  return entry


def build_family(config, dataset):
  """The family of `config.model.family`, built for `dataset`."""
  return family_class(config.model.family)(config, dataset)
