"""The train state: a pytree holding every model of a run with its own optimizer.

A VAE run has one entry, `models['vae']`; a GAN run has 'generator' and
'discriminator'; a VAE-GAN has three. Optimizer *transformations* (optax
GradientTransformation objects) are not part of the state: they are rebuilt
from the config and kept by the model family, so the state is plain arrays
that orbax can save and restore.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class ModelState:
  """One trainable network: parameters, optimizer state, EMA parameters, mutable collections."""
  params: Any
  opt_state: Any
  ema_params: Any = None     # None when config.train.ema_decay == 0
  collections: Any = None    # e.g. {'batch_stats': ...} or spectral-norm vectors; None if stateless

  @classmethod
  def create(cls, params: Any, tx: optax.GradientTransformation, ema: bool = False,
             collections: Any = None) -> "ModelState":
    return cls(params=params, opt_state=tx.init(params),
               ema_params=jax.tree.map(jnp.copy, params) if ema else None,
               collections=collections)

  def apply_gradients(self, grads: Any, tx: optax.GradientTransformation, ema_decay: float = 0.0,
                      collections: Any = None) -> "ModelState":
    updates, opt_state = tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    ema = self.ema_params
    if ema is not None:
      ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
    return self.replace(params=params, opt_state=opt_state, ema_params=ema,
                        collections=self.collections if collections is None else collections)

  def eval_params(self) -> Any:
    """EMA parameters when kept (used for sampling and evaluation), else the raw ones."""
    return self.params if self.ema_params is None else self.ema_params


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # int32 scalar: number of updates done
  models: dict[str, ModelState]
  data_order: jax.Array      # int32 [N]: the current epoch's permutation (see data/sampler.py)


def param_count(params: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))
