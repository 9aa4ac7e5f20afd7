"""Evaluate a trained run: restore a checkpoint, run the evaluation suite, write `<workdir>/eval/metrics.json`.

The file's layout, and how a partial evaluation merges into an earlier one: `gen_jax/eval/metrics_file.py`; what
eval.py prints: `gen_jax/eval/eval_summary.py`.
"""
from __future__ import annotations

import copy
import json
import pathlib
import platform
import sys
import time
from typing import Any, Sequence

import jax

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.errors import CheckpointError, ConfigError, GenJaxError
from gen_jax.eval.metrics_file import merge_reports, now, read_previous
from gen_jax.eval.params import count_params
from gen_jax.eval.suite import Suite, static_skips, validate_eval_config
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.loop import RESUMABLE_CHANGES, setup, write_images
from gen_jax.train.checkpoint import has_checkpoints
from gen_jax.storage.atomic import write_text_atomic
from gen_jax.storage.lock import FolderLock
from gen_jax.models.registry import family_class


def config_for_loading(config):
  """`config`, or, when every requested group will be skipped for reasons the config alone shows
  (`suite.static_skips`), a copy that loads only the few examples restoring the model needs: a skip must not wait
  for a whole dataset to be decoded. The report keeps `config` itself."""
  groups = tuple(config.eval.suites)
  skips = static_skips(config, groups)
  if not groups or len(skips) < len(groups):
    return config
  print("eval: every requested group is skipped (" + "; ".join(f"{g}: {r}" for g, r in skips.items())
        + "); loading only a few examples to restore the model.", flush=True)
  small = copy.deepcopy(config)
  caps = family_class(config.model.family).capabilities_for(config)   # a step's real batches: n_critic for a GAN
  small.data.num_train = int(config.data.batch_size) * max(1, caps.batches_per_step if caps is not None else 1)
  small.data.num_test = 1
  return small


def hardware_description() -> dict:
  devices = jax.devices()
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind, "num_devices": len(devices),
          "num_processes": jax.process_count(), "jax_version": jax.__version__, "machine": platform.machine(),
          "processor": platform.processor() or platform.machine()}


def _run_groups(suite: Suite, groups: Sequence[str]) -> dict[str, dict]:
  """{group: {"metrics", "protocol", "seconds"}}, one group at a time on one Suite (so the classifier is loaded
  once); each group draws from its own key (rng.for_purpose(key, group)), whatever else runs."""
  out: dict[str, dict] = {}
  seen: dict[str, str] = {}
  for group in groups:
    result = suite.run_groups((group,))
    clash = sorted(set(result["metrics"]) & set(seen))
    if clash:
      raise GenJaxError(f"evaluation group {group!r} reports metrics already reported by "
                        f"{seen[clash[0]]!r}: {clash}")
    seen.update({name: group for name in result["metrics"]})
    out[group] = {"metrics": result["metrics"], "protocol": result["protocol"][group],
                  "seconds": result["seconds"][group]}
  return out


def refuse_run_overrides(overrides: Sequence[str], workdir: pathlib.Path) -> None:
  """A checkpoint is evaluated with the config it was trained with: overrides of keys that a resume may not change
  either (model, data, optimizer, ...) are a ConfigError, before anything is restored."""
  keys = [o.split("=", 1)[0].strip().removeprefix("--").removeprefix("config.") for o in overrides]
  refused = [k for k in keys if not k.startswith(RESUMABLE_CHANGES)]
  if refused:
    raise ConfigError(f"{', '.join('--config.' + k for k in refused)}: eval.py evaluates a checkpoint with the config "
                      f"it was trained with ({workdir / 'config.json'}); only train.*, eval.*, data.data_dir and "
                      "data.tfds_dir may be overridden. Drop the override (another model is another run: train it "
                      "in its own --workdir).")


def evaluate_workdir(workdir: str | pathlib.Path, step: int | None = None, overrides: Sequence[str] = (),
                     progress: bool = True) -> dict:
  """Evaluates the groups of config.eval.suites on a checkpoint of `workdir` and writes eval/metrics.json (merged
  with the groups of an earlier evaluation of the same checkpoint, see the module docstring). Returns the report
  as written. Holds the lock of `<workdir>/eval/` (storage/lock.py) meanwhile: one evaluation of a run at a time."""
  workdir = pathlib.Path(workdir)
  refuse_run_overrides(overrides, workdir)
  if workdir.is_dir() and (workdir / "config.json").is_file() and not has_checkpoints(workdir):
    raise CheckpointError(f"no checkpoint in {workdir / 'checkpoints'}; train first "
                          f"(python train.py --config=... --workdir={workdir})")
  if not (workdir.is_dir() and parallel.is_main_process()):
    return _evaluate_workdir(workdir, step, overrides, progress)
  with FolderLock(workdir / "eval", "eval.py"):
    return _evaluate_workdir(workdir, step, overrides, progress)


def _evaluate_workdir(workdir: pathlib.Path, step: int | None, overrides: Sequence[str], progress: bool) -> dict:
  if not workdir.is_dir():
    raise CheckpointError(f"workdir {workdir} does not exist; train first: "
                          f"python train.py --config=configs/vae.py --workdir={workdir}")
  config = config_lib.load_saved_config(workdir / "config.json")
  config_lib.apply_overrides(config, overrides)
  validate_eval_config(config)
  run = setup(config_for_loading(config))
  ckpts = Checkpoints(workdir, async_save=False)
  try:
    # A reader never moves checkpoints (train.py, which holds the workdir's lock, quarantines damaged ones): a
    # damaged latest checkpoint is skipped with a warning and the previous one evaluated.
    restored = ckpts.restore_latest_good(run.abstract_state(), step, quarantine=False)
  finally:
    ckpts.close()
  if restored is None:
    raise CheckpointError(f"no checkpoint in {workdir / 'checkpoints'}; train first "
                          f"(python train.py --config=... --workdir={workdir})")
  state, meta, restored_step = restored
  t0 = time.time()
  suite = Suite(run, state.models, run.keys["eval"], config.eval, int(config.seed), progress=progress)
  per_group = _run_groups(suite, tuple(config.eval.suites))
  devices = suite.placement.describe()
  out_dir = workdir / "eval"
  images = write_images(run, state.models, out_dir, restored_step)
  when = now()
  metrics: dict[str, Any] = {}
  for result in per_group.values():
    metrics.update(result["metrics"])
  report = {
      "workdir": str(workdir),
      "step": restored_step,
      "checkpoint": str(ckpts.directory / str(restored_step)),
      "family": run.family.name,
      "capabilities": run.family.capabilities.to_json(),   # the report reads what the family can do from here
      "config": config_lib.to_dict(config),
      "metrics": metrics,
      "protocol": dict({g: r["protocol"] for g, r in per_group.items()}, seed=int(config.seed),
                       dataset=run.dataset.name, dataset_source=run.dataset.source),
      "groups": {g: {"step": restored_step, "evaluated_at": when, "metrics": list(r["metrics"]),
                     "seconds": r["seconds"], "overrides": list(overrides), "eval_devices": devices}
                 | ({"skipped": True} if "skipped" in r["protocol"] else {})
                 for g, r in per_group.items()},
      "eval_group_seconds": {g: r["seconds"] for g, r in per_group.items()},
      "last_evaluated_groups": list(per_group),   # by the eval.py call that wrote the file; see "groups"
      "params": count_params({name: m.params for name, m in state.models.items()}),
      # wall_seconds includes eval_seconds (the during-training evaluation and image grids); None before it existed
      "train": {"steps": restored_step, "wall_seconds": meta.get("train_wall_seconds"),
                "eval_seconds": meta.get("train_eval_seconds"),
                "device_kind": meta.get("device_kind"), "num_devices": meta.get("num_devices")},
      "eval_hardware": dict(hardware_description(), eval_devices=devices),
      "eval_wall_seconds": time.time() - t0,
      "images": images,
  }
  if parallel.is_main_process():
    path = out_dir / "metrics.json"
    previous, problem = read_previous(path)
    report, notes = merge_reports(previous, report, problem)
    for note in notes:
      print(f"note: {path}: {note}", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(report, indent=2, default=str))
  return report
