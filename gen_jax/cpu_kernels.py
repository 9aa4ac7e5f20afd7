"""Which kernel library XLA:CPU runs the train step's convolutions with (`config.train.cpu_conv_kernels`).

XLA:CPU (jaxlib 0.10) hands dots, reductions and every convolution to the YNNPACK library by default
(its `xla_cpu_experimental_ynn_fusion_type` list is INDIVIDUAL_DOT, REDUCE, INDIVIDUAL_CONVOLUTION). For the
convolutions of these models, XLA's own convolution kernels are about twice as fast, forward and both
gradients (NOTES.md, "Measurements moved from docstrings"):

  'xla'      (default) drop INDIVIDUAL_CONVOLUTION from that list through the jit's `compiler_options`:
             convolutions run on XLA's own kernels, dots and reductions stay on YNNPACK as before.
  'ynnpack'  leave XLA's default untouched.

REDUCE stays: YNNPACK's reductions make batch norm ~3x faster, though a REDUCE fusion can still pull in the
convolution that feeds it (an average pool after a conv); `nets/layers.py` removes those patterns
(`nearest_upsample_conv`, `conv_avg_pool`), which is faster on either library.
The option applies only when the mesh's devices are CPUs; on GPU and TPU nothing is passed. A jaxlib
that does not know the option or its values is detected once (a tiny probe compile) and then left at its
default with a warning, rather than failing the run.
"""
from __future__ import annotations

import functools
import warnings
from typing import Optional

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError

CPU_CONV_KERNELS = ("xla", "ynnpack")
DEFAULT_CPU_CONV_KERNELS = "xla"
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# XLA:CPU's default YNN list without INDIVIDUAL_CONVOLUTION.
_YNN_WITHOUT_CONVOLUTION = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"


def check(choice: str) -> str:
  if choice not in CPU_CONV_KERNELS:
    raise ConfigError(f"config.train.cpu_conv_kernels={choice!r} is unknown; valid values: "
                      f"{', '.join(CPU_CONV_KERNELS)} ('xla' is the fast default on CPU)")
  return choice


@functools.lru_cache(maxsize=None)
def _supported(options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's CPU compiler accepts `options` (a probe compile of x + 1)."""
  try:
    cpu = jax.devices("cpu")[0]
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(
        jax.ShapeDtypeStruct((), jnp.float32, sharding=jax.sharding.SingleDeviceSharding(cpu))).compile()
    return True
  except Exception as err:  # jaxlib without the option or the enum values
    warnings.warn(f"config.train.cpu_conv_kernels: this jaxlib rejects {dict(options)} ({err}); "
                  "XLA:CPU keeps its default convolution kernels")
    return False


def compiler_options(choice: str, platform: str) -> Optional[dict[str, str]]:
  """The `jax.jit(compiler_options=...)` for `choice` on devices of `platform`; None means XLA's defaults."""
  check(choice)
  if platform != "cpu" or choice == "ynnpack":
    return None
  options = {YNN_OPTION: _YNN_WITHOUT_CONVOLUTION}
  return options if _supported(tuple(sorted(options.items()))) else None
