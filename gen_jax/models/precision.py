"""Mixed precision for the training step: bfloat16 compute, float32 master weights, optimizer state and loss.

`config.train.compute_dtype` picks the policy:

  'float32'   every cast below is the identity (it returns its argument untouched, adding no op to the graph),
              so a float32 run computes exactly what it computed before this module existed.
  'bfloat16'  inside the loss, each network application runs on bfloat16 copies of its parameters and inputs
              (`cast_to_compute`), and its outputs are cast back to float32 (`cast_to_output`) before any loss,
              likelihood or penalty is computed. Gradients flow back through the casts and so arrive in
              float32; parameters, optimizer state, EMA and the loss never leave float32.

Non-parameter collections (`cast_collections_to_compute`): spectral-norm vectors (`u`, `sigma`) are cast to
bfloat16 too, since a float32 `sigma` would promote the normalized kernel, and so the whole layer, back to
float32. Batch-norm running statistics (leaves named 'mean' / 'var') stay float32: Flax's BatchNorm reduces
and stores them in float32 by design and returns its output in the input's dtype, so they do not promote, and
rounding them to bfloat16 every step would lose the precision of the running average. Collections returned
by a train-mode apply are stored back as float32 (`cast_collections_to_storage`), so the saved state has
the same dtypes under both policies.

Sampling and evaluation apply the networks in float32 and do not use this module.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
STORAGE_DTYPE = jnp.float32
# Leaves of non-parameter collections kept in float32 under any policy (Flax BatchNorm running statistics).
FLOAT32_COLLECTION_LEAVES = ("mean", "var")


def _is_float(x: Any) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _leaf_name(path) -> str | None:
  last = path[-1] if path else None
  return getattr(last, "key", getattr(last, "name", None))


@dataclasses.dataclass(frozen=True)
class Precision:
  """A mixed-precision policy: the dtype networks compute in during training."""
  compute_dtype: Any = jnp.float32

  @property
  def enabled(self) -> bool:
    """True when casts do something (compute dtype other than float32)."""
    return jnp.dtype(self.compute_dtype) != jnp.dtype(STORAGE_DTYPE)

  @property
  def name(self) -> str:
    return jnp.dtype(self.compute_dtype).name

  def cast_to_compute(self, tree: Any) -> Any:
    """Floating leaves -> compute dtype (integer labels, keys and None untouched); identity for float32."""
    if not self.enabled:
      return tree
    return jax.tree.map(lambda x: x.astype(self.compute_dtype) if _is_float(x) else x, tree)

  def cast_to_output(self, tree: Any) -> Any:
    """Floating leaves -> float32, the dtype every loss and likelihood is computed in; identity for float32."""
    if not self.enabled:
      return tree
    return jax.tree.map(lambda x: x.astype(STORAGE_DTYPE) if _is_float(x) else x, tree)

  def cast_collections_to_compute(self, collections: Any) -> Any:
    """Non-parameter collections -> compute dtype, except batch-norm running statistics (see module doc)."""
    if not self.enabled or not collections:
      return collections

    def cast(path, x):
      if _is_float(x) and _leaf_name(path) not in FLOAT32_COLLECTION_LEAVES:
        return x.astype(self.compute_dtype)
      return x
    return jax.tree.map_with_path(cast, collections)

  def cast_collections_to_storage(self, collections: Any) -> Any:
    """Collections returned by a train-mode apply -> float32, as stored in the train state."""
    return self.cast_to_output(collections)

  def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn(*args) -> cast_to_output(fn(*cast_to_compute(args))): a network applied in the compute dtype."""
    if not self.enabled:
      return fn
    return lambda *args: self.cast_to_output(fn(*self.cast_to_compute(args)))


FLOAT32 = Precision(jnp.float32)


def make_precision(name: str) -> Precision:
  """'float32' | 'bfloat16' -> Precision; anything else is a ConfigError naming the valid choices."""
  if name not in COMPUTE_DTYPES:
    raise ConfigError(f"config.train.compute_dtype={name!r} is not valid; choose one of: "
                      f"{', '.join(COMPUTE_DTYPES)}")
  return Precision(COMPUTE_DTYPES[name])


def from_config(config) -> Precision:
  """The policy of `config.train.compute_dtype` (float32 when the key is absent)."""
  return make_precision(str(config.train.compute_dtype))
