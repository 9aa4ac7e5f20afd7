"""Multi-host path for real: two processes on localhost (CPU collectives) vs one process, same global batch."""
import os
import socket
import subprocess
import sys

import numpy as np

from gen_jax.train.metrics_log import read_metrics

from conftest import REPO_ROOT, TINY


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _cmd(workdir, shared_data_dir, tfds_cache_dir):
  return [sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={workdir}", "--no_progress",
          f"--config.data.data_dir={shared_data_dir}", f"--config.data.tfds_dir={tfds_cache_dir}",
          *(f"--config.{o}" for o in TINY), "--config.train.num_steps=6", "--config.train.log_every=1",
          "--config.train.checkpoint_every=6", "--config.train.eval_every=6", "--config.train.eval_samples=64"]


def test_two_processes_match_one_process(shared_data_dir, tfds_cache_dir, tmp_path):
  base = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
  base.update(JAX_PLATFORMS="cpu", XLA_FLAGS=os.environ["XLA_FLAGS"].replace(
      "--xla_force_host_platform_device_count=8", "--xla_force_host_platform_device_count=1"))
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(base, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid))
    procs.append(subprocess.Popen(_cmd(tmp_path / "multi", shared_data_dir, tfds_cache_dir), cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=400)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n\n".join(o[-3000:] for o in outs)
  single_env = dict(base, XLA_FLAGS=base["XLA_FLAGS"].replace("device_count=1", "device_count=2"))
  single = subprocess.run(_cmd(tmp_path / "single", shared_data_dir, tfds_cache_dir), cwd=REPO_ROOT, env=single_env,
                          capture_output=True, text=True, timeout=400)
  assert single.returncode == 0, single.stderr[-3000:]
  rows = {name: read_metrics(tmp_path / name / "metrics.jsonl") for name in ("multi", "single")}
  multi, one = ([r["loss"] for r in rows[name] if r["split"] == "train"] for name in ("multi", "single"))
  assert len(multi) == len(one) == 6
  np.testing.assert_allclose(multi, one, rtol=1e-5)
  # Sample quality measured during training: every process takes part, process 0 logs the same number.
  fd_multi, fd_one = ([r["fd_classifier"] for r in rows[name] if r["split"] == "eval"] for name in ("multi", "single"))
  assert len(fd_multi) == len(fd_one) == 1
  np.testing.assert_allclose(fd_multi, fd_one, rtol=1e-4)
  assert (tmp_path / "multi" / "checkpoints" / "6").is_dir()
