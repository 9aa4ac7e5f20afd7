"""`python -m gen_jax.bench`: training throughput, FLOP/s against the measured matmul peak, memory, and the
PyTorch references (eager, torch.compile) of the same five architectures (see README, section "Benchmark").

Modules: peak (matmul peak, FLOPs from XLA's cost analysis), hardware (what the numbers were measured on),
runner (the JAX measurement of one config), torch_reference (the same architectures in PyTorch, run as a
child process), torch_process (starts and drives that child),
step_profile (where a step's time goes, from a jax.profiler trace), memory (bounded-memory importance
sampling), scaling (1/2/4/8 fake-device table), report (table, JSON),
__main__ (the command line).
"""
from __future__ import annotations

import os as _os

# The environment as the user started the benchmark, before any gen_jax code could change it: the PyTorch
# child process starts from this (torch_process.child_env), so it never inherits a setting the project chose.
STARTUP_ENV: dict[str, str] = dict(_os.environ)
