"""Evaluate a trained run: restore a checkpoint, run the evaluation suite, write `<workdir>/eval/metrics.json`.

metrics.json: {"metrics": {name: number}, "protocol": {"seed", "dataset", "dataset_source", <group>: {...}}, ...}
with one protocol entry per group of `gen_jax/eval/suite.py` (or {"skipped": reason}).
"""
from __future__ import annotations

import json
import pathlib
import platform
import time
from typing import Sequence

import jax

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.errors import CheckpointError
from gen_jax.eval.suite import run_suite
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.loop import setup, write_images


def hardware_description() -> dict:
  devices = jax.devices()
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "num_devices": len(devices),
          "num_processes": jax.process_count(), "jax_version": jax.__version__, "machine": platform.machine(),
          "processor": platform.processor() or platform.machine()}


def evaluate_workdir(workdir: str | pathlib.Path, step: int | None = None, overrides: Sequence[str] = (),
                     progress: bool = True) -> dict:
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise CheckpointError(f"workdir {workdir} does not exist; train first: "
                          f"python train.py --config=configs/vae.py --workdir={workdir}")
  config = config_lib.load_saved_config(workdir / "config.json")
  config_lib.apply_overrides(config, overrides)
  run = setup(config)
  ckpts = Checkpoints(workdir, async_save=False)
  try:
    restored = ckpts.restore_latest_good(run.abstract_state(), step)
  finally:
    ckpts.close()
  if restored is None:
    raise CheckpointError(f"no checkpoint in {workdir / 'checkpoints'}; train first "
                          f"(python train.py --config=... --workdir={workdir})")
  state, meta, restored_step = restored
  t0 = time.time()
  result = run_suite(run, state.models, run.keys["eval"], config.eval, int(config.seed), progress=progress)
  out_dir = workdir / "eval"
  images = write_images(run, state.models, out_dir, restored_step)
  report = {
      "workdir": str(workdir),
      "step": restored_step,
      "checkpoint": str(ckpts.directory / str(restored_step)),
      "family": run.family.name,
      "config": config_lib.to_dict(config),
      "metrics": result["metrics"],
      "protocol": dict(result["protocol"], seed=int(config.seed), dataset=run.dataset.name,
                       dataset_source=run.dataset.source),
      "eval_group_seconds": result["seconds"],
      "train": {"steps": restored_step, "wall_seconds": meta.get("train_wall_seconds"),
                "device_kind": meta.get("device_kind"), "num_devices": meta.get("num_devices")},
      "eval_hardware": dict(hardware_description(), eval_devices=result["devices"]),
      "eval_wall_seconds": time.time() - t0,
      "images": images,
  }
  if parallel.is_main_process():
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
  return report
