"""The PyTorch reference in its own process: started, driven round by round, and described.

`TorchProcess` runs `python -m gen_jax.bench.torch_reference --serve` for one config and mode (eager or
torch.compile); the benchmark alternates its `call(n)` with the JAX step's (timing.interleaved), so each side
has the machine to itself during its own rounds and keeps its own threads and OpenMP settings. One process
cannot host both fairly: OMP_WAIT_POLICY=PASSIVE slows PyTorch's small ops, ACTIVE leaves its threads spinning
on the cores during the JAX rounds.

The child's environment is built explicitly (`child_env`): the environment the user started the benchmark
with (gen_jax.bench.STARTUP_ENV, taken before any project code ran), without JAX/XLA settings, so PyTorch runs
at its library defaults unless the user set its threading variables.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Sequence

from gen_jax.bench import STARTUP_ENV
from gen_jax.bench.runner import REPO_ROOT
from gen_jax.errors import GenJaxError

TORCH_MISSING = ("PyTorch is not installed, so the PyTorch reference is skipped; install it with "
                 "`pip install -r requirements-bench.txt` (CPU wheel)")
# JAX/XLA's own settings: never passed to the PyTorch child.
JAX_ENV_PREFIXES = ("XLA_", "JAX_", "TF_")


def available() -> bool:
  """Whether torch is installed (without importing it into the JAX process)."""
  return importlib.util.find_spec("torch") is not None


def child_env(startup: dict[str, str] | None = None) -> dict[str, str]:
  """The PyTorch child's environment: the user's startup environment minus JAX/XLA settings, repo importable."""
  base = STARTUP_ENV if startup is None else startup
  env = {k: v for k, v in base.items() if not k.startswith(JAX_ENV_PREFIXES)}
  env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH", "")) if p)
  return env


class TorchProcess:
  """One config's PyTorch update in a child process; `call(n)` runs n updates there and returns its seconds.

  After construction either `error` is None and `info` describes the child (threads, environment, compile
  time), or `error` says in one line why there is no row (the process is then closed).
  """
  steps_per_call = 1

  def __init__(self, config_spec: str, overrides: Sequence[str] = (), *, mode: str = "eager",
               backend: str = "inductor", threads: int | None = None, timeout_s: float = 1800.0):
    self.mode, self.timeout_s = mode, timeout_s
    self.command = [sys.executable, "-m", "gen_jax.bench.torch_reference", "--serve", f"--config={config_spec}",
                    f"--mode={mode}", f"--backend={backend}", *[f"--set={o}" for o in overrides]]
    if threads:
      self.command.append(f"--threads={int(threads)}")
    self.error: str | None = None
    self.info: dict = {}
    self._stderr = tempfile.TemporaryFile(mode="w+")
    self.proc = subprocess.Popen(self.command, env=child_env(), cwd=REPO_ROOT, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
    try:
      ready = self._read()
    except GenJaxError as err:
      ready = {"ready": {"error": str(err)}}
    self.info = ready.get("ready", {})
    self.error = self.info.get("error")
    if self.error:
      self.close()
    else:
      self.images_per_step = int(self.info["images_per_step"])

  def _read(self) -> dict:
    line = self.proc.stdout.readline()
    if not line:
      self.proc.wait(timeout=30)
      self._stderr.seek(0)
      tail = [s for s in self._stderr.read().strip().splitlines() if s.strip()]
      raise GenJaxError(f"the PyTorch process exited ({self.proc.returncode}): "
                        f"{tail[-1] if tail else 'no message'}")
    return json.loads(line)

  def call(self, n: int) -> float:
    if self.error:
      raise GenJaxError(f"no PyTorch process ({self.error})")
    self.proc.stdin.write(f"call {int(n)}\n")
    self.proc.stdin.flush()
    reply = self._read()
    if "error" in reply:
      raise GenJaxError(f"the PyTorch reference failed: {reply['error']}")
    return float(reply["seconds"])

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()
        self.proc.wait()
    self._stderr.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
