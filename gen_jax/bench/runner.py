"""The JAX side of the benchmark: build one config's run, compile its train step, time it, count its FLOPs.

Compile time is split into lowering and XLA compilation (`jit(...).lower(...)` then `.compile()`), then
the first call is timed on its own; the steady state is timed by `timing.interleaved` on the compiled
object, so nothing recompiles. FLOPs per step come from XLA's cost analysis of the compiled single-step
function (per-device program x devices). Memory: the device's own 'peak_bytes_in_use' where the backend
reports it (GPU), else XLA's static memory analysis of the compiled step (arguments + outputs +
temporaries - donated aliases).
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Sequence

import jax

from gen_jax import config as config_lib
from gen_jax.bench.peak import compiled_flops
from gen_jax.errors import ConfigError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The five main configs of the benchmark (issue 5), then the 32x32 colour ones (issue 20, not run by default):
# name -> config spec.
BENCH_CONFIGS = {
    "mlp_vae": "configs/vae.py",
    "conv_vae": "configs/vae.py:conv",
    "dcgan": "configs/gan.py",
    "resnet_gan": "configs/gan.py:resnet",
    "vaegan": "configs/vaegan.py",
    "dcgan_cifar10": "configs/gan.py:cifar10",
    "conv_vae_cifar10": "configs/vae.py:conv,cifar10",
}


@dataclasses.dataclass(frozen=True)
class BenchSpec:
  """One row of the benchmark: a display name, a config spec (`file.py[:variant]`) and config overrides."""
  name: str
  config_spec: str
  overrides: tuple[str, ...] = ()

  @property
  def base_name(self) -> str:
    return self.name.split("@")[0]


def parse_spec(entry: str) -> BenchSpec:
  """'mlp_vae', 'mlp_vae@2048' (batch size 2048) or a config spec 'configs/vae.py:conv[@2048]'."""
  entry = entry.strip()
  name, _, batch = entry.partition("@")
  overrides: tuple[str, ...] = ()
  if batch:
    try:
      overrides = (f"data.batch_size={int(batch)}",)
    except ValueError:
      raise ConfigError(f"benchmark entry {entry!r}: the part after '@' must be a batch size, e.g. mlp_vae@2048"
                        ) from None
  if name in BENCH_CONFIGS:
    return BenchSpec(entry, BENCH_CONFIGS[name], overrides)
  if name.partition(":")[0].endswith(".py"):
    return BenchSpec(entry, name, overrides)
  raise ConfigError(f"unknown benchmark config {name!r}; use one of {', '.join(BENCH_CONFIGS)} or a config file "
                    f"spec such as configs/vae.py:conv (optionally with @BATCH)")


def parse_specs(names: str | None, config_specs: Sequence[str] = ()) -> list[BenchSpec]:
  entries = [n for n in (names or "").split(",") if n.strip()] + list(config_specs)
  return [parse_spec(e) for e in entries]


def build_config(spec: BenchSpec, overrides: Sequence[str] = ()):
  """The validated config of `spec`, with the benchmark's overrides applied after the spec's own."""
  path, _, variant = spec.config_spec.partition(":")
  if not pathlib.Path(path).is_file() and (REPO_ROOT / path).is_file():
    path = str(REPO_ROOT / path)
  config = config_lib.load_config_file(f"{path}:{variant}" if variant else path)
  config_lib.apply_overrides(config, list(overrides) + list(spec.overrides))
  return config_lib.validate_config(config)


def _compile_step(run, steps_per_call: int):
  """The trainer's own compile of the step (its compiler options included)."""
  return run.compile_train_step(steps_per_call=steps_per_call)


def memory_report(compiled) -> dict:
  """Peak device memory where the backend reports it, else XLA's static analysis of `compiled`."""
  out: dict = {}
  analysis = compiled.memory_analysis()
  if analysis is not None:
    parts = {k: int(getattr(analysis, f"{k}_size_in_bytes", 0)) for k in ("argument", "output", "temp", "alias")}
    out["compiled"] = parts
    out["bytes"] = parts["argument"] + parts["output"] + parts["temp"] - parts["alias"]
    out["source"] = "XLA memory_analysis: arguments + outputs + temporaries - donated aliases"
  stats = None
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # backends without allocator statistics raise or return None
    stats = None
  if stats and "peak_bytes_in_use" in stats:
    out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    out["bytes"] = int(stats["peak_bytes_in_use"])
    out["source"] = "device memory_stats()['peak_bytes_in_use'] (process peak so far)"
  return out


class JaxBench:
  """One config's compiled train step, ready to be timed. `call(n)` runs n jitted calls (n * S steps)."""

  def __init__(self, config, *, steps_per_dispatch: int = 1, sync_each_step: bool | None = None):
    from gen_jax.train import loop   # here, so that the PyTorch child process can build configs without it
    self.config = config
    t0 = time.perf_counter()
    self.run = loop.setup(config)
    self.state = jax.block_until_ready(self.run.init_state())
    self.setup_s = time.perf_counter() - t0
    self.steps_per_call = int(steps_per_dispatch)
    # XLA:CPU runs all fake devices on one thread pool: wait for each multi-device step (see train/loop.py).
    self.sync_each_step = (jax.default_backend() == "cpu" and self.run.mesh.devices.size > 1
                           if sync_each_step is None else sync_each_step)
    jitted = _compile_step(self.run, self.steps_per_call)
    args = (self.state, self.run.data, self.run.keys)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    self.compiled = lowered.compile()
    t2 = time.perf_counter()
    self.lower_s, self.compile_s = t1 - t0, t2 - t1
    # XLA's cost analysis counts the per-device (SPMD-partitioned) program: times the devices for the whole step.
    # A scan's body is counted once, so with several steps per call one plain step is compiled and counted.
    counted = self.compiled if self.steps_per_call == 1 else _compile_step(self.run, 1).lower(*args).compile()
    self.flops_per_step = compiled_flops(counted) * int(self.run.mesh.devices.size)
    self.memory = memory_report(self.compiled)
    t0 = time.perf_counter()
    self.call(1)
    self.first_call_s = time.perf_counter() - t0
    family = self.run.family
    self.batch_size = int(config.data.batch_size)
    self.images_per_step = self.batch_size * int(family.capabilities.batches_per_step)

  def call(self, n: int) -> float:
    start = time.perf_counter()
    state = self.state
    for _ in range(n):
      state, _ = self.compiled(state, self.run.data, self.run.keys)
      if self.sync_each_step:
        jax.block_until_ready(state.step)
    self.state = jax.block_until_ready(state)
    return time.perf_counter() - start

  def describe(self) -> dict:
    return {"family": self.run.family.name, "batch_size": self.batch_size, "images_per_step": self.images_per_step,
            "num_devices": int(self.run.mesh.devices.size), "steps_per_dispatch": self.steps_per_call,
            "compute_dtype": str(self.config.train.get("compute_dtype", "float32")),
            "cpu_conv_kernels": str(self.config.train.get("cpu_conv_kernels", "xla")),
            "compiler_options": self.run.compiler_options(),
            "setup_s": self.setup_s, "lower_s": self.lower_s, "compile_s": self.compile_s,
            "first_call_s": self.first_call_s, "flops_per_step": self.flops_per_step,
            "memory": self.memory}
