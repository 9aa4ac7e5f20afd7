"""Where evaluation runs: a data-parallel mesh over this process's devices.

Evaluation splits each batch over `config.eval.num_devices` local devices, with the parameters (of the
model and of the feature classifier) replicated on them. 0, the default, means every local device on
accelerators and one device on CPU, where XLA's devices share the same cores (and fake devices would run
every op once per device). An input whose leading axis does not divide by the number of devices is
replicated instead: correct, computed on every device (small image grids only, since evaluation rounds
its batch size up to a multiple of the device count, `round_batch`).

With several processes (`jax.distributed`), the models stay where training put them and inputs are passed
as host arrays, which every process holds in full: each process computes the same numbers.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from gen_jax import parallel
from gen_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Placement:
  """A 1-D mesh of local devices (None: several processes, placement left to jit)."""
  mesh: Mesh | None

  @property
  def num_devices(self) -> int:
    return 1 if self.mesh is None else int(self.mesh.devices.size)

  def describe(self) -> str:
    if self.mesh is None:
      if jax.process_count() > 1:
        return f"every device of {jax.process_count()} processes (placement left to jit)"
      return "the default device (placement left to jit)"
    device = self.mesh.devices.flat[0]
    return f"{self.num_devices} {device.platform} device(s), batches split over them"

  def replicate(self, tree: Any) -> Any:
    """Parameters (any pytree of arrays) on every device of the mesh."""
    if self.mesh is None:
      return tree
    return jax.device_put(tree, parallel.replicated(self.mesh))

  def batch(self, x: Any) -> Any:
    """An input with a leading batch axis: split over the mesh when it divides, else replicated.

    Tracers (calls from inside another jitted function) and None pass through unchanged."""
    if self.mesh is None or x is None or isinstance(x, jax.core.Tracer):
      return x
    n = np.shape(x)[0] if np.ndim(x) else 0
    if n and n % self.num_devices == 0:
      return jax.device_put(x, parallel.batch_sharded(self.mesh))
    return jax.device_put(x, parallel.replicated(self.mesh))

  def round_batch(self, batch_size: int) -> int:
    """The smallest multiple of the device count >= batch_size."""
    n = self.num_devices
    return -(-max(int(batch_size), 1) // n) * n


LEFT_TO_JIT = Placement(None)   # no mesh: inputs as given, batch sizes unchanged (the default of library calls)


def eval_placement(num_devices: int = 0) -> Placement:
  """The evaluation mesh: `num_devices` local devices (0: all on accelerators, 1 on CPU); see the module docstring."""
  if jax.process_count() > 1:
    return LEFT_TO_JIT
  local = jax.local_devices()
  if num_devices < 0 or num_devices > len(local):
    raise ConfigError(f"config.eval.num_devices={num_devices} but this process has {len(local)} device(s); use 0 "
                      f"(the default: all local devices on accelerators, one on CPU) or a number up to {len(local)}")
  if num_devices == 0:
    num_devices = 1 if local[0].platform == "cpu" else len(local)
  return Placement(parallel.make_mesh(local[:num_devices]))
