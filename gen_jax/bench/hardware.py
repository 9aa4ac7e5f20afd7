"""What a benchmark ran on: CPU model, cores, load, JAX version and backend, devices, PyTorch version."""
from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform

import jax


def cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def usable_cores() -> int:
  """Cores this process may run on (the affinity mask; os.cpu_count() where that is not available)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def load_average() -> list[float]:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return []


def rss_bytes() -> dict[str, int]:
  """Resident set size of this process now ('rss') and its peak so far ('peak_rss'), from /proc/self/status."""
  out = {}
  try:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
      if line.startswith("VmRSS:"):
        out["rss"] = int(line.split()[1]) * 1024
      elif line.startswith("VmHWM:"):
        out["peak_rss"] = int(line.split()[1]) * 1024
  except OSError:
    pass
  return out


def describe() -> dict:
  devices = jax.devices()
  info = {"cpu": cpu_model(), "cores": usable_cores(), "os_cpu_count": os.cpu_count(), "load_average": load_average(),
          "jax": jax.__version__, "backend": jax.default_backend(), "num_devices": len(devices),
          "device_kind": devices[0].device_kind, "python": platform.python_version(),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}
  try:  # the installed version, without importing torch (seconds, and it would fix OpenMP settings early)
    info["torch"] = importlib.metadata.version("torch")
  except importlib.metadata.PackageNotFoundError:
    info["torch"] = None
  return info


def one_line(info: dict) -> str:
  torch_part = f", torch {info['torch']}" if info.get("torch") else ""
  return (f"{info['cpu']}, {info['cores']} usable cores (os.cpu_count {info['os_cpu_count']}), load average "
          f"{info['load_average']}; jax {info['jax']} backend {info['backend']} ({info['num_devices']} x "
          f"{info['device_kind']}){torch_part}; python {info['python']}")
