"""The jitted training step, shared by every model family.

Two layers, both pure:

  update(state, batch, key) -> (state, metrics)
      the family's gradient update(s) on one batch; increments `state.step`.
  train_step(state, data, keys) -> (state, metrics)
      derives this step's keys from `fold_in(train_key, state.step)`, draws the
      batch from the on-device dataset, calls `update`.

`compile_train_step` jits `train_step` once, with the state donated and with
explicit shardings: state and data replicated, the batch split over the
mesh's data axis. With `steps_per_call=S > 1` one call runs S train steps in
a `jax.lax.scan` (`make_multi_step`), so Python and dispatch overhead is paid
once per S steps; each step inside is exactly the 1-step `train_step` (its keys
still come from `fold_in(train_key, state.step)`), and the call returns the
metrics of the last step only. The training loop compiles the accumulating
form (`accumulate=True`, `make_accumulating_step`): the call also adds every
step's metrics into on-device sums, so logged rows are means over the window.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from gen_jax import parallel, rng
from gen_jax.data.sampler import BatchSampler, DeviceData
from gen_jax.errors import ConfigError
from gen_jax.models.family import Metrics, ModelFamily
from gen_jax.models.state import TrainState


def make_update(family: ModelFamily) -> Callable[[TrainState, dict, jax.Array], tuple[TrainState, Metrics]]:
  def update(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, Metrics]:
    models, metrics = family.update_models(state.models, batch, key, state.step)
    return state.replace(step=state.step + 1, models=models), metrics
  return update


def make_train_step(family: ModelFamily, sampler: BatchSampler):
  update = make_update(family)

  def train_step(state: TrainState, data: DeviceData, keys: dict[str, jax.Array]):
    step_key = rng.for_step(keys["train"], state.step)
    batch, order = sampler.sample(data, state.data_order, keys["data_order"], state.step,
                                  rng.for_purpose(step_key, "data"))
    state = state.replace(data_order=order)
    return update(state, batch, rng.for_purpose(step_key, "update"))

  return train_step


def make_multi_step(family: ModelFamily, sampler: BatchSampler, steps: int):
  """(state, data, keys) -> (state, metrics of the last step) doing `steps` train steps in a `lax.scan`."""
  if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
    raise ConfigError(f"steps per call must be an int >= 1 (config.train.steps_per_dispatch); got {steps!r}")
  steps = int(steps)
  train_step = make_train_step(family, sampler)
  if steps == 1:
    return train_step

  def multi_step(state: TrainState, data: DeviceData, keys: dict[str, jax.Array]):
    def body(state, _):
      return train_step(state, data, keys)

    state, metrics = jax.lax.scan(body, state, None, length=steps)
    return state, jax.tree.map(lambda m: m[-1], metrics)

  return multi_step


def make_accumulating_step(family: ModelFamily, sampler: BatchSampler, steps: int):
  """(state, sums, data, keys) -> (state, sums + the metrics of each of `steps` train steps).

  The metrics are summed on device (float32), so the loop can log the mean over a logging window without
  fetching anything per step; the steps are exactly those of `make_multi_step`."""
  if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
    raise ConfigError(f"steps per call must be an int >= 1 (config.train.steps_per_dispatch); got {steps!r}")
  train_step = make_train_step(family, sampler)

  def add(sums, metrics):
    return jax.tree.map(lambda s, m: s + jnp.asarray(m, jnp.float32), sums, metrics)

  def accumulating_step(state: TrainState, sums: Metrics, data: DeviceData, keys: dict[str, jax.Array]):
    if steps == 1:
      state, metrics = train_step(state, data, keys)
      return state, add(sums, metrics)

    def body(carry, _):
      state, sums = carry
      state, metrics = train_step(state, data, keys)
      return (state, add(sums, metrics)), None

    (state, sums), _ = jax.lax.scan(body, (state, sums), None, length=int(steps))
    return state, sums

  return accumulating_step


def zero_metric_sums(family: ModelFamily, sampler: BatchSampler, state: Any, data: DeviceData, keys: dict,
                     mesh: Mesh) -> Metrics:
  """Zeros shaped like one step's metrics (float32), replicated over the mesh: the start of a logging window."""
  shapes = jax.eval_shape(make_train_step(family, sampler), state, data, keys)[1]
  rep = parallel.replicated(mesh)
  return jax.tree.map(lambda s: jax.device_put(jnp.zeros(s.shape, jnp.float32), rep), shapes)


def run_keys(seed: int) -> dict[str, jax.Array]:
  """The run's purpose keys, all derived from one root key."""
  root = rng.root_key(seed)
  return {name: rng.for_purpose(root, name) for name in ("init", "data_order", "train", "eval", "visualize")}


def compile_train_step(family: ModelFamily, sampler: BatchSampler, mesh: Mesh, steps_per_call: int = 1,
                       compiler_options: dict[str, str] | None = None, accumulate: bool = False):
  """jit of `steps_per_call` train steps per call, the state donated, explicit replicated shardings.

  (state, data, keys) -> (state after the steps, metrics of the last step). Compiles once per shape.
  With `accumulate` (the training loop's form): (state, sums, data, keys) -> (state, sums + every step's
  metrics), state and sums donated (`make_accumulating_step`).
  `compiler_options` go to XLA as they are (see cpu_kernels.py for the ones the trainer passes).
  """
  rep = parallel.replicated(mesh)
  if accumulate:
    step = make_accumulating_step(family, sampler, steps_per_call)
    return jax.jit(step, donate_argnums=(0, 1), out_shardings=(rep, rep), compiler_options=compiler_options)
  step = make_multi_step(family, sampler, steps_per_call)
  return jax.jit(step, donate_argnums=0, out_shardings=(rep, rep), compiler_options=compiler_options)


def _make_init(family: ModelFamily, sampler: BatchSampler):
  def init(data: DeviceData, keys: dict) -> TrainState:
    # An example batch only fixes input shapes; which examples it holds does not matter.
    batch, _ = sampler.sample(data, jnp.arange(sampler.num_examples, dtype=jnp.int32), keys["data_order"],
                              jnp.asarray(1, jnp.int32), keys["init"])
    return TrainState(step=jnp.zeros((), jnp.int32), models=family.init_models(keys["init"], batch),
                      data_order=sampler.initial_order(keys["data_order"]))
  return init


def init_state(family: ModelFamily, sampler: BatchSampler, data: DeviceData, keys: dict, mesh: Mesh) -> TrainState:
  """Initial state computed under jit and placed replicated over the mesh."""
  return jax.jit(_make_init(family, sampler), out_shardings=parallel.replicated(mesh))(data, keys)


def abstract_state(family: ModelFamily, sampler: BatchSampler, data: DeviceData, keys: dict, mesh: Mesh) -> Any:
  """Shapes, dtypes and shardings of the state without computing it (the target of a restore)."""
  rep = parallel.replicated(mesh)
  tree = jax.eval_shape(_make_init(family, sampler), data, keys)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), tree)
