"""Devices, mesh and shardings: one code path for 1 CPU, 8 GPUs or many hosts.

Data parallelism only: parameters and the on-device dataset are replicated,
the global batch is split along the mesh axis 'data'. XLA's SPMD partitioner
inserts the gradient all-reduce. Multi-host runs call
`jax.distributed.initialize` (see `maybe_initialize_distributed`), after which
`jax.devices()` lists the devices of every host and the same mesh code
applies unchanged.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gen_jax.errors import ConfigError

DATA_AXIS = "data"


def maybe_initialize_distributed() -> bool:
  """Starts multi-process JAX when the environment asks for it.

  Triggered by GEN_JAX_DISTRIBUTED=1 (cluster auto-detection: SLURM, Open MPI,
  TPU pods, ...) or by JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and
  JAX_PROCESS_ID set explicitly (e.g. two processes on localhost).
  Returns True when distributed mode was initialized.
  """
  coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if os.environ.get("GEN_JAX_DISTRIBUTED", "0") not in ("1", "true") and not coordinator:
    return False
  if jax.distributed.is_initialized():
    return True
  if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
    # CPU processes need a collectives library to talk to each other; GPUs/TPUs ignore this.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs: dict[str, Any] = {}
  if coordinator:
    try:
      kwargs = dict(coordinator_address=coordinator,
                    num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                    process_id=int(os.environ["JAX_PROCESS_ID"]))
    except KeyError as e:
      raise ConfigError(f"JAX_COORDINATOR_ADDRESS is set but {e.args[0]} is not: set JAX_NUM_PROCESSES "
                        "and JAX_PROCESS_ID too (or unset JAX_COORDINATOR_ADDRESS for one process)") from None
  jax.distributed.initialize(**kwargs)
  return True


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D data-parallel mesh over `devices` (default: every device of every host)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split across the mesh."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "config.data.batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f"{name}={batch_size} is not divisible by the number of devices ({n}); "
                      f"use a multiple of {n}, e.g. {max(n, batch_size // n * n)}")


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Places host arrays, identical on every process, replicated on all devices of the mesh."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def is_main_process() -> bool:
  return jax.process_index() == 0


def main_process_decides(flag: bool) -> bool:
  """The main process's `flag` on every process (the processes of a multi-host job must take the same branch
  around collectives); `flag` as given with one process."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils   # noqa: PLC0415
  return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(flag))))
