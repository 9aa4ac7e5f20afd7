"""Orbax checkpoints in `<workdir>/checkpoints`: save, resume, survive corruption and full disks.

Each step directory holds two items: 'state' (the TrainState pytree) and 'meta' (JSON: config, cumulative wall
time, dataset description, and the state's fingerprint). Orbax writes each step to a temporary directory and
renames it when complete, so a crash mid-save never damages the previous checkpoint.

The fingerprint (`meta["state_spec"]`: path, shape and dtype of every leaf; `meta["state_digest"]`: sha256 of the
leaves' bytes) is computed from the state at save time and written in the same commit as the arrays, so there is
no window in which a checkpoint exists without it. At restore:
  - a state_spec that differs from the restore target is a ConfigError (the config does not match the checkpoint);
    nothing is moved;
  - evidence of damage (a missing or unparseable metadata or array file, restored arrays whose sha256 differs from
    the recorded one) is corruption: reported in one line and the previous step tried; the process that owns the
    workdir (train.py, holding its lock) moves the step to `<workdir>/checkpoints_corrupt/` (nothing is deleted),
    readers (eval.py) leave it in place;
  - any other failure (out of memory, permissions, an I/O error) says nothing about the files: a one-line
    CheckpointError naming the step and the error, nothing moved;
  - a checkpoint written before fingerprints existed restores with a one-line note (it cannot be verified).
A failed save (disk full, quota) is a CheckpointError naming the step, the folder and the last good checkpoint;
orbax's temporary folder is removed.
"""
from __future__ import annotations

import ast
import datetime
import errno
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from gen_jax.errors import CheckpointError, ConfigError
from gen_jax.storage.lock import check_writable_folder as check_workdir  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

FORMAT = 2            # meta["gen_jax_checkpoint_format"]: 2 = state_spec + state_digest recorded
MODEL_LEAVES = ".models"   # the leaves whose shapes the config decides
CORRUPT_DIR = "checkpoints_corrupt"
_TMP_MARK = ".orbax-checkpoint-tmp"


class CorruptCheckpoint(Exception):
  """A step whose files are damaged or fail their checksum (internal: turned into a skip, a quarantine or a
  CheckpointError)."""


# tensorstore's status codes (the start of its ValueError's text) that say the stored bytes are missing or garbled.
_DAMAGE_CODES = ("DATA_LOSS:", "NOT_FOUND:", "OUT_OF_RANGE:")


def _damage(e: BaseException | None) -> BaseException | None:
  """The exception in `e`'s chain of causes that shows files of a step are missing or unparseable (what orbax and
  tensorstore raise for a deleted, truncated or garbled file: tests/test_checkpoint_errors.py lists the cases), or
  None: anything else (out of memory, permissions, I/O errors) says nothing about the files."""
  for _ in range(20):
    if e is None:
      return None
    if isinstance(e, (CorruptCheckpoint, json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError,
                      NotADirectoryError)):
      return e
    text = str(e).strip("'\"")
    if isinstance(e, KeyError) and "was not found in the checkpoint" in text:   # an item folder is missing
      return e
    if text.startswith(_DAMAGE_CODES) or (text.startswith("FAILED_PRECONDITION:")
                                          and ("Error reading" in text or "Error decoding" in text)):
      return e   # FAILED_PRECONDITION: a compressed chunk or a JSON file that does not decode
    e = e.__cause__   # orbax wraps a failed read of an array in a bare Exception raised from the cause
  return None


def _root(e: BaseException) -> BaseException:
  """The first cause of `e` (orbax's wrapper of a failed array read says less than what it wraps)."""
  for _ in range(20):
    if e.__cause__ is None:
      break
    e = e.__cause__
  return e


def _host_leaf(x) -> np.ndarray:
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  return np.asarray(jax.device_get(x))


def state_spec(tree: Any) -> list[list[str]]:
  """[[path, shape, dtype], ...] of every leaf of `tree` (arrays or ShapeDtypeStructs), in flatten order."""
  return [[jax.tree_util.keystr(path), str(tuple(np.shape(leaf))), str(getattr(leaf, "dtype", type(leaf).__name__))]
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def state_digest(tree: Any) -> tuple[str, dict[str, str]] | None:
  """(sha256 over every leaf's path, shape, dtype and bytes; {path: sha256 of that leaf}); None when some leaf lives
  partly on other hosts. Per leaf, so that a restore of a slice of a leaf (eval.py reads only the part of the data
  order it loaded) still verifies the others."""
  whole, leaves = hashlib.sha256(), {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      return None
    arr = np.ascontiguousarray(_host_leaf(leaf))
    key = jax.tree_util.keystr(path)
    h = hashlib.sha256(f"{key}|{arr.shape}|{arr.dtype}|".encode())
    h.update(arr.tobytes())
    leaves[key] = h.hexdigest()
    whole.update(leaves[key].encode())
  return whole.hexdigest(), leaves


def _spec_mismatch(saved: list, target: list) -> str | None:
  """None when the networks and their optimizer states (the leaves under .models) agree, else a short description
  of the first difference. Other leaves (the data order, keys) may differ in shape: eval.py restores a slice."""
  saved = [tuple(x) for x in saved if x[0].startswith(MODEL_LEAVES)]
  target = [tuple(x) for x in target if x[0].startswith(MODEL_LEAVES)]
  if saved == target:
    return None
  saved_by_path = {p: (s, d) for p, s, d in saved}
  target_by_path = {p: (s, d) for p, s, d in target}
  for p, (s, d) in target_by_path.items():
    if p not in saved_by_path:
      return f"the model has {p} (shape {s}), the checkpoint does not"
    if saved_by_path[p] != (s, d):
      cs, cd = saved_by_path[p]
      return f"{p} is {cd}{cs} in the checkpoint, {d}{s} in the model built from this config"
  extra = [p for p in saved_by_path if p not in target_by_path]
  if extra:
    return f"the checkpoint has {extra[0]}, the model built from this config does not"
  return "the leaves are in another order"


def _at_saved_shapes(abstract_state: Any, spec: list | None) -> tuple[Any, set[str]]:
  """`abstract_state` with the leaves outside .models whose shape differs from the checkpoint's (the data order
  when eval.py loads fewer examples than training did) at the saved shape, replicated; and their paths. They are
  read whole (and verified), then cut to the requested shape by `_to_shapes`."""
  if not spec:
    return abstract_state, set()
  saved = {p: shape for p, shape, _ in spec}
  resized = set()

  def fix(path, leaf):
    key = jax.tree_util.keystr(path)
    if key.startswith(MODEL_LEAVES) or key not in saved or str(tuple(leaf.shape)) == saved[key]:
      return leaf
    resized.add(key)
    sharding = getattr(leaf, "sharding", None)
    if isinstance(sharding, jax.sharding.NamedSharding):
      sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return jax.ShapeDtypeStruct(ast.literal_eval(saved[key]), leaf.dtype, sharding=sharding)

  return jax.tree_util.tree_map_with_path(fix, abstract_state), resized


def _to_shapes(state: Any, abstract_state: Any, resized: set[str]) -> Any:
  """The leaves in `resized` cut (or zero-filled) to the shapes of `abstract_state`, on its shardings."""
  def fix(path, leaf, want):
    if jax.tree_util.keystr(path) not in resized:
      return leaf
    arr = np.asarray(jax.device_get(leaf))
    if arr.ndim and arr.shape[1:] == tuple(want.shape[1:]) and arr.shape[0] >= want.shape[0]:
      arr = arr[: want.shape[0]]
    else:
      arr = np.zeros(want.shape, arr.dtype)
    return jax.device_put(arr, want.sharding) if getattr(want, "sharding", None) is not None else arr

  return jax.tree_util.tree_map_with_path(fix, state, abstract_state)


def _is_disk_full(e: BaseException) -> bool:
  seen = 0
  while e is not None and seen < 20:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
      return True
    text = str(e)
    if "No space left on device" in text or "RESOURCE_EXHAUSTED" in text or "Disk quota exceeded" in text:
      return True
    e = e.__cause__ or e.__context__
    seen += 1
  return False


class _QuietOrbaxErrors(logging.Filter):
  """Drops the tracebacks orbax's background save threads log (about ten for one full disk) and asyncio's reports
  of the other reads of a failed restore: the failure reaches the main thread as an exception, which Checkpoints
  turns into one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR:
      return True
    if record.name == "asyncio":   # "Future exception was never retrieved" of the sibling reads of a failed restore
      return "tensorstore_spec" not in record.getMessage()
    return f"{os.sep}orbax{os.sep}" not in (record.pathname or "")


_QUIET = _QuietOrbaxErrors()


def _quiet_excepthook(previous):
  """After a failed save, tensorstore's pending writes call back into orbax's closed asyncio loop and print one
  'RuntimeError: Event loop is closed' traceback each (through sys.excepthook); the save's own failure is
  reported once, so these are dropped."""
  def hook(kind, value, tb):
    if kind is RuntimeError and str(value) == "Event loop is closed":
      return
    previous(kind, value, tb)
  hook.gen_jax_quiet = True
  return hook


def _quiet_unraisablehook(previous):
  def hook(unraisable):
    if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
      return
    previous(unraisable)
  hook.gen_jax_quiet = True
  return hook


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
    self._pending: int | None = None      # the step whose async save may still be running
    for name in ("absl", "orbax", "asyncio"):
      if _QUIET not in logging.getLogger(name).filters:
        logging.getLogger(name).addFilter(_QUIET)
    if not getattr(sys.excepthook, "gen_jax_quiet", False):
      sys.excepthook = _quiet_excepthook(sys.excepthook)
    if not getattr(sys.unraisablehook, "gen_jax_quiet", False):
      sys.unraisablehook = _quiet_unraisablehook(sys.unraisablehook)
    self._last_good: int | None = None    # the newest step known committed
    self._failed = False                  # a save failed (reported once; later waits are skipped)

  def steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Starts saving `step` (asynchronously); a failure of this or the previous save is a CheckpointError."""
    self._finish_pending()
    digest = state_digest(state)
    meta = dict(meta, gen_jax_checkpoint_format=FORMAT, state_spec=state_spec(state),
                state_digest=({"sha256": digest[0], "leaves": digest[1]} if digest is not None
                              else {"skipped": "state spread over several hosts"}))
    if self._last_good is None:
      steps = [s for s in self.steps() if s != step]
      self._last_good = steps[-1] if steps else None
    try:
      self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      meta=ocp.args.JsonSave(meta)), force=True)
    except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
      raise self._save_failed(step, e) from None
    self._pending = step

  def _finish_pending(self) -> None:
    if self._failed:
      return
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      step, self._pending, self._failed = self._pending, None, True
      raise self._save_failed(step, e) from None
    if self._pending is not None:
      self._last_good, self._pending = self._pending, None

  def _save_failed(self, step: int | None, e: BaseException) -> CheckpointError:
    removed = self._remove_partial_saves()
    last = (f"the last good checkpoint, {self.directory / str(self._last_good)} (step {self._last_good}), is intact"
            if self._last_good is not None else "there is no earlier checkpoint")
    what = f"step {step}" if step is not None else "a step"
    partial = f"; the partial save was removed ({', '.join(p.name for p in removed)})" if removed else ""
    if _is_disk_full(e):
      return CheckpointError(
          f"saving the checkpoint of {what} to {self.directory} failed: no space left on device{partial}; {last}. "
          f"Fix: free disk space and rerun the same command (it resumes from there), or rerun with another "
          f"--workdir on a disk with room.")
    return CheckpointError(
        f"saving the checkpoint of {what} to {self.directory} failed ({type(e).__name__}: {_short(e)}){partial}; "
        f"{last}. Rerun the same command to resume from it.")

  def _remove_partial_saves(self) -> list[pathlib.Path]:
    removed = []
    if self.directory.is_dir():
      for p in self.directory.iterdir():
        if _TMP_MARK in p.name:
          shutil.rmtree(p, ignore_errors=True)
          removed.append(p)
    return removed

  def wait(self) -> None:
    self._finish_pending()

  def close(self) -> None:
    try:
      self._finish_pending()
    finally:
      try:
        self.manager.close()
      except Exception:  # noqa: BLE001 - after a failed save orbax re-raises it here; it was reported once
        if not self._failed:
          raise

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """(state, meta) of `step`. ConfigError when the checkpoint's structure, shapes or dtypes differ from
    `abstract_state`; CorruptCheckpoint when its files are damaged or fail their checksum; CheckpointError (one
    line) for any other failure, which says nothing about the files."""
    try:
      return self._restore(step, abstract_state)
    except (CorruptCheckpoint, ConfigError, CheckpointError):
      raise
    except Exception as e:  # noqa: BLE001 - orbax/tensorstore/jax raise many types
      damage = _damage(e)
      if damage is not None:
        raise CorruptCheckpoint(f"{type(damage).__name__}: {_short(damage)}") from e
      raise self._restore_failed(step, e) from e

  def _restore_failed(self, step: int, e: BaseException) -> CheckpointError:
    e = _root(e)
    return CheckpointError(
        f"restoring checkpoint {self.directory / str(step)} failed ({type(e).__name__}: {_short(e)}); nothing was "
        f"moved: this error does not show that its files are damaged. Fix the cause (memory, permissions, the disk) "
        f"and rerun; if the files are damaged, move that folder into {self.workdir / CORRUPT_DIR} and rerun.")

  def _restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    try:
      meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001
      damage = _damage(e)
      if damage is None:
        raise self._restore_failed(step, e) from e
      raise CorruptCheckpoint(f"its meta item cannot be read ({type(damage).__name__}: {_short(damage)})") from e
    if not isinstance(meta, dict):
      raise CorruptCheckpoint(f"its meta item is a JSON {type(meta).__name__}, not an object")
    meta = dict(meta)
    target = state_spec(abstract_state)
    if "state_spec" in meta:
      problem = _spec_mismatch(meta["state_spec"], target)
      if problem:
        raise self._mismatch(step, problem)
    elif int(meta.get("gen_jax_checkpoint_format", 1)) >= FORMAT:
      raise CorruptCheckpoint("its meta item lacks the state_spec this version writes")
    target, resized = _at_saved_shapes(abstract_state, meta.get("state_spec"))
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except Exception as e:  # noqa: BLE001
      if "state_spec" not in meta:   # written before fingerprints: a shape mismatch shows only here
        problem = self._legacy_mismatch(step, abstract_state)
        if problem:
          raise self._mismatch(step, problem) from None
      damage = _damage(e)
      if damage is None:
        raise self._restore_failed(step, e) from e
      raise CorruptCheckpoint(f"{type(damage).__name__}: {_short(damage)}") from e
    state = restored["state"]
    recorded = meta.get("state_digest")
    if isinstance(recorded, dict) and isinstance(recorded.get("leaves"), dict):
      actual = state_digest(state)
      saved_shapes = {p: shape for p, shape, _ in meta.get("state_spec", ())}
      restored_shapes = {p: shape for p, shape, _ in state_spec(state)}
      if actual is not None:
        changed = [p for p, h in actual[1].items() if p in recorded["leaves"] and h != recorded["leaves"][p]
                   and saved_shapes.get(p) == restored_shapes.get(p)]
        if changed:
          raise CorruptCheckpoint(f"{len(changed)} of its arrays ({changed[0]}{', ...' if len(changed) > 1 else ''}) "
                                  "do not match the sha256 recorded at save: bytes changed on disk")
    elif recorded is None:
      print(f"note: checkpoint {self.directory / str(step)} was written before checkpoints carried a checksum; "
            "restored without verifying it.", flush=True)
    if resized:
      state = _to_shapes(state, abstract_state, resized)
    return state, meta

  def _mismatch(self, step: int, problem: str) -> ConfigError:
    if "ema_params" in problem and "the checkpoint does not" in problem:
      # Not a config mistake: the network gained EMA parameters since (the VAE-GAN encoder, 2026-12-06).
      return ConfigError(f"checkpoint {self.directory / str(step)} was written by an older gen_jax whose model had no "
                         f"{problem.split(' (')[0].replace('the model has ', '')}; this version keeps EMA parameters "
                         "there. The checkpoint is fine (nothing was moved): retrain with --restart (or into another "
                         "--workdir), or evaluate it with the commit that trained it (git log).")
    return ConfigError(f"checkpoint {self.directory / str(step)} does not match the model this config builds: "
                       f"{problem}. The checkpoint is fine (nothing was moved): use the config the run was trained "
                       f"with (<workdir>/config.json; drop --config.model.* / --config.data.* overrides), or another "
                       f"--workdir for a new model.")

  def _legacy_mismatch(self, step: int, abstract_state: Any) -> str | None:
    try:
      saved = self.manager.item_metadata(step)["state"]
      leaves = jax.tree.leaves(saved.tree if hasattr(saved, "tree") else saved)
      saved_shapes = sorted(str(tuple(x.shape)) for x in leaves)
    except Exception:  # noqa: BLE001 - unreadable metadata is corruption, not a mismatch
      return None
    target = [x for x in jax.tree.leaves(abstract_state) if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)]
    target_shapes = sorted(str(tuple(x.shape)) for x in target)
    keys = len(jax.tree.leaves(abstract_state)) - len(target)
    if len(saved_shapes) - keys == len(target_shapes):
      rest = list(saved_shapes)
      for s in target_shapes:
        if s not in rest:
          return f"the model has an array of shape {s} that the checkpoint does not"
        rest.remove(s)
      return None
    return f"the checkpoint has {len(saved_shapes)} arrays, the model built from this config {len(target) + keys}"

  def restore_latest_good(self, abstract_state: Any, step: int | None = None,
                          quarantine: bool = True) -> tuple[Any, dict, int] | None:
    """Restores `step` (or the newest readable one). Returns (state, meta, step) or None if none exist.

    With an explicit `step`, a failure is an error. Without, damaged steps are reported and the next older one is
    tried; with `quarantine` they are also moved to checkpoints_corrupt/ (only the process holding the workdir's
    lock, train.py, may move them: a reader such as eval.py passes False). A checkpoint that does not match
    `abstract_state` is a ConfigError and any other failure a CheckpointError, either way, and nothing is moved.
    """
    steps = self.steps()
    if step is not None:
      if step not in steps:
        raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; available steps: {steps or 'none'}")
      try:
        state, meta = self.restore(step, abstract_state)
      except CorruptCheckpoint as e:
        raise CheckpointError(f"checkpoint {self.directory / str(step)} cannot be read ({e}). Pick another step "
                              f"with --step (available: {steps}).") from e
      return state, meta, step
    for candidate in reversed(steps):
      try:
        state, meta = self.restore(candidate, abstract_state)
        self._last_good = candidate
        return state, meta, candidate
      except CorruptCheckpoint as e:
        src = self.directory / str(candidate)
        if not src.is_dir():   # removed while being read (a training run keeps only its newest checkpoints)
          what = "was removed while being read"
        elif quarantine:
          what = f"is unreadable ({e}); moved it to {self._quarantine(candidate)}"
        else:
          what = (f"is unreadable ({e}); left it in place (train.py moves it to {self.workdir / CORRUPT_DIR} when "
                  "it resumes this run)")
        log.warning("checkpoint at step %d %s", candidate, what)
        print(f"WARNING: checkpoint at step {candidate} {what}; falling back to the previous checkpoint.", flush=True)
    if steps:
      if quarantine:
        raise CheckpointError(f"none of the checkpoints in {self.directory} could be read (steps {steps}); they were "
                              f"moved to {self.workdir / CORRUPT_DIR}. Start a fresh run with a new --workdir "
                              "(or train.py --restart to move this run's files aside and start over here).")
      raise CheckpointError(f"none of the checkpoints in {self.directory} could be read (steps {steps}); nothing was "
                            "moved. Rerun train.py on this workdir (it moves damaged checkpoints aside and resumes "
                            "from a readable one, or says to start over).")
    return None

  def _quarantine(self, step: int) -> pathlib.Path:
    src = self.directory / str(step)
    dst_dir = self.workdir / CORRUPT_DIR
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


# What train.py --restart moves aside: everything a run writes into its workdir.
RUN_FILES = ("checkpoints", CORRUPT_DIR, "metrics.jsonl", "tensorboard", "images", "config.json",
             "training_eval.json", "eval", "anomaly")


def has_checkpoints(workdir: str | os.PathLike) -> bool:
  """Whether `<workdir>/checkpoints` holds a committed-looking step folder (a cheap look, nothing is read)."""
  folder = pathlib.Path(workdir) / "checkpoints"
  return folder.is_dir() and any(p.is_dir() and p.name.isdigit() for p in folder.iterdir())


def refuse_silent_restart(workdir: str | os.PathLike, last_logged_step: int, checkpoint_every: int) -> None:
  """Called when `workdir` has no checkpoint to resume from: a ConfigError if it holds traces of an earlier run
  that got past a checkpoint (quarantined checkpoints; metrics logged after step 2 * checkpoint_every: the second
  save waits for the first to commit, so such a run had a checkpoint), which a silent start from step 0 would mix
  with the new one. Rows of a run stopped before its first checkpoint committed are not such a trace (that run is
  simply started again)."""
  workdir = pathlib.Path(workdir)
  found = []
  corrupt = workdir / CORRUPT_DIR
  if corrupt.is_dir() and any(corrupt.iterdir()):
    found.append(f"unreadable checkpoints moved to {corrupt} ({', '.join(sorted(p.name for p in corrupt.iterdir()))})")
  if last_logged_step > 2 * checkpoint_every:
    found.append(f"{workdir / 'metrics.jsonl'} logged up to step {last_logged_step}")
  if found:
    raise ConfigError(f"{workdir} holds an earlier run but no readable checkpoint ({'; '.join(found)}); not starting "
                      "it over from step 0 silently. Start over deliberately with train.py --restart (moves those "
                      "files into a dated folder inside the workdir), or pass a new --workdir.")


def move_run_aside(workdir: str | os.PathLike) -> pathlib.Path | None:
  """Moves the files of the run in `workdir` into `<workdir>/restarted_<time>/` (nothing is deleted); returns
  that folder, or None when there was nothing to move."""
  workdir = pathlib.Path(workdir)
  present = [workdir / name for name in RUN_FILES if (workdir / name).exists()]
  if not present:
    return None
  dst = workdir / f"restarted_{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
  i = 1
  while dst.exists():
    dst = dst.with_name(f"{dst.name.split('.')[0]}.{i}")
    i += 1
  dst.mkdir()
  for p in present:
    shutil.move(str(p), str(dst / p.name))
  return dst


def _short(e: BaseException, limit: int = 200) -> str:
  text = str(e).strip().splitlines()
  text = text[0] if text else ""
  text = text.split(" See full TensorStore details")[0]
  return text[:limit]
