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
                      collections: Any = None, after: Any = None, ema_step: Any = None) -> "ModelState":
    """One optimizer update. `after`: scalars that read the old parameters (metrics such as the gradient
    and parameter norms); the update is ordered after them (see `ordered_after`), so that XLA overwrites
    the donated parameters in place instead of copying them first. `ema_step`: the number of updates done
    before this one (the train state's step), which sets the EMA's warm-up (`ema_decay_at`); required
    when EMA parameters are kept."""
    old = self.params if after is None else ordered_after(self.params, after)
    updates, opt_state = tx.update(grads, self.opt_state, old)
    params = optax.apply_updates(old, updates)
    ema = self.ema_params
    if ema is not None:
      if ema_step is None:
        raise TypeError("apply_gradients keeps EMA parameters: pass ema_step (the updates done before this one)")
      ema = ema_update(ema, params, ema_decay_at(ema_decay, ema_step))
    return self.replace(params=params, opt_state=opt_state, ema_params=ema,
                        collections=self.collections if collections is None else collections)

  def eval_params(self) -> Any:
    """EMA parameters when kept (used for sampling and evaluation), else the raw ones."""
    return self.params if self.ema_params is None else self.ema_params


EMA_WARMUP = 10.0


def ema_decay_at(decay: Any, step: Any) -> jax.Array:
  """The decay of the EMA update that follows `step` earlier updates: min(decay, step / (step + 10)).

  A warm-up in the manner of TF's ExponentialMovingAverage(num_updates) (min(decay, (1 + t) / (10 + t))),
  shifted by one update so that the first update gives decay 0: the EMA after update 1 equals the
  parameters, and the random initialisation has weight exactly zero from then on. While the warm-up
  binds, the average spans roughly the last 10% of the updates (not the last 1 / (1 - decay)), so a short
  or mid-length run's EMA is not a long average dominated by its first steps.
  """
  t = jnp.asarray(step, jnp.float32)
  return jnp.minimum(jnp.asarray(decay, jnp.float32), t / (t + EMA_WARMUP))


def ema_update(ema: Any, params: Any, decay: Any) -> Any:
  """decay * ema + (1 - decay) * params, leaf by leaf, in each leaf's dtype."""
  return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params)


def ordered_after(tree: Any, deps: Any) -> Any:
  """`tree`, value for value, but depending on the scalars `deps` (a dependency XLA cannot fold away).

  A donated parameter is updated in place only if XLA can prove every read of its old value happens
  before the write. Reads that are not ancestors of the update itself (a layer's input gradient, which
  feeds the layers below; a parameter-norm metric) make XLA's copy insertion copy every parameter at the
  start of the step instead (measured in NOTES.md, "CPU speed vs PyTorch eager").
  Passing the parameters through `+ 0 * isnan(d)` for scalars d that depend on all those reads (the
  gradient norm depends on every input gradient) orders the update after them. The added zero changes
  no value (finite or not, whatever d is; only a -0.0 becomes +0.0) and fuses into the update.
  """
  leaves = jax.tree.leaves(deps)
  if not leaves:
    return tree
  zero = sum(jnp.any(jnp.isnan(jnp.asarray(d))).astype(jnp.float32) for d in leaves) * 0.0
  return jax.tree.map(lambda a: a + zero.astype(a.dtype), tree)


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # int32 scalar: number of updates done
  models: dict[str, ModelState]
  data_order: jax.Array      # int32 [N]: the current epoch's permutation (see data/sampler.py)
