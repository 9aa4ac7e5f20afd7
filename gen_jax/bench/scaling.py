"""Data-parallel scaling table: the same benchmark entries on 1, 2, 4, 8 (fake) devices.

Each device count runs `python -m gen_jax.bench` in its own subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=N (the flag must be set before JAX starts), so the batch is
split over an N-device mesh exactly as in training. On a CPU the fake devices share the same cores: the
table shows that sharded training works and what it costs, not a speed-up.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Sequence

from gen_jax.bench.runner import REPO_ROOT
from gen_jax.errors import GenJaxError

_DEVICE_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S+")


def device_env(num_devices: int, base: dict | None = None) -> dict:
  """The environment of a subprocess seeing `num_devices` CPU devices (other XLA flags kept)."""
  env = dict(os.environ if base is None else base)
  flags = _DEVICE_FLAG.sub("", env.get("XLA_FLAGS", "")).strip()
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={int(num_devices)}".strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
  return env


def scaling_rows(entries: str, device_counts: Sequence[int] = (1, 2, 4, 8), extra_args: Sequence[str] = (),
                 timeout_s: float = 900.0) -> list[dict]:
  """Rows of `python -m gen_jax.bench --configs=entries` for each device count, with 'speedup_vs_1'."""
  rows: list[dict] = []
  with tempfile.TemporaryDirectory() as tmp:
    for n in device_counts:
      out = os.path.join(tmp, f"scaling_{n}.json")
      cmd = [sys.executable, "-m", "gen_jax.bench", f"--configs={entries}", f"--json={out}", "--no_peak",
             "--quiet", *extra_args]
      proc = subprocess.run(cmd, env=device_env(n), cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=timeout_s)
      if proc.returncode != 0:
        raise GenJaxError(f"the {n}-device benchmark subprocess failed (exit {proc.returncode}): "
                          f"{' '.join(cmd)}\n{proc.stderr[-3000:]}")
      with open(out) as f:
        for row in json.load(f):
          row["kind"] = "scaling"
          rows.append(row)
  base = {r["config"]: r["images_per_s"] for r in rows if r["num_devices"] == min(device_counts)}
  for row in rows:
    row["speedup_vs_1"] = row["images_per_s"] / base[row["config"]] if base.get(row["config"]) else float("nan")
  return rows
