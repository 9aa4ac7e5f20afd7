"""Orbax checkpoints in `<workdir>/checkpoints`: save, resume, survive corruption.

Each step directory holds two items: 'state' (the TrainState pytree) and
'meta' (JSON: config, cumulative wall time, dataset description). Orbax
writes each step to a temporary directory and renames it when complete, so
a crash mid-save never damages the previous checkpoint. If the latest step
cannot be read (disk full, truncated file, hand-edited), it is reported,
moved to `<workdir>/checkpoints_corrupt/` (nothing is deleted) and the
previous good step is used instead.
"""
from __future__ import annotations

import logging
import pathlib
import shutil
from typing import Any

import orbax.checkpoint as ocp

from gen_jax.errors import CheckpointError

log = logging.getLogger(__name__)


class Checkpoints:
  """A thin policy layer over `ocp.CheckpointManager`."""

  def __init__(self, workdir: str | pathlib.Path, keep: int = 3, async_save: bool = True):
    self.workdir = pathlib.Path(workdir).resolve()
    self.directory = self.workdir / "checkpoints"
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=async_save),
        item_names=("state", "meta"))

  def steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def save(self, step: int, state: Any, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                    meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def restore_latest_good(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int] | None:
    """Restores `step` (or the newest readable one). Returns (state, meta, step) or None if none exist.

    With an explicit `step`, a failure is an error. Without, unreadable steps
    are reported, moved aside, and the next older one is tried.
    """
    steps = self.steps()
    if step is not None:
      if step not in steps:
        raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; available steps: {steps or 'none'}")
      try:
        state, meta = self.restore(step, abstract_state)
      except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
        raise CheckpointError(f"checkpoint {self.directory / str(step)} cannot be read ({type(e).__name__}: "
                              f"{_short(e)}). Pick another step with --step (available: {steps}).") from e
      return state, meta, step
    for candidate in reversed(steps):
      try:
        state, meta = self.restore(candidate, abstract_state)
        return state, meta, candidate
      except Exception as e:  # noqa: BLE001
        moved = self._quarantine(candidate)
        log.warning("checkpoint at step %d is unreadable (%s: %s); moved it to %s and trying the previous one",
                    candidate, type(e).__name__, _short(e), moved)
        print(f"WARNING: checkpoint at step {candidate} is unreadable ({type(e).__name__}: {_short(e)}); "
              f"moved it to {moved}; falling back to the previous checkpoint.", flush=True)
    if steps:
      raise CheckpointError(f"none of the checkpoints in {self.directory} could be read (steps {steps}); they were "
                            f"moved to {self.workdir / 'checkpoints_corrupt'}. Start a fresh run with a new --workdir.")
    return None

  def _quarantine(self, step: int) -> pathlib.Path:
    src = self.directory / str(step)
    dst_dir = self.workdir / "checkpoints_corrupt"
    dst_dir.mkdir(exist_ok=True)
    dst = dst_dir / str(step)
    i = 1
    while dst.exists():
      dst = dst_dir / f"{step}.{i}"
      i += 1
    shutil.move(str(src), str(dst))
    # The manager caches its step list; rebuild it so the moved step is forgotten.
    self.manager.reload()
    return dst


def _short(e: Exception, limit: int = 300) -> str:
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  return text[:limit]
