"""Issue 18: nothing lost under corruption, full disks, two writers and early Ctrl-C.

Each test reproduces one failure of the issue (it fails on the code before the fix): checksummed checkpoints,
shape mismatches that are config errors, no silent restart, atomic writes, disk full during a save, the workdir
lock, early Ctrl-C, a --workdir naming a file, and the minor items (metrics rows past a resume, eval.py creating
checkpoints/, an empty data_dir, a diverging loss).
"""
from __future__ import annotations

import errno
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.models import optim
from gen_jax.errors import CheckpointError, ConfigError, DatasetError
from gen_jax.storage import atomic
from gen_jax.storage.lock import FolderLock, FolderLockedError
from gen_jax.train import checkpoint as checkpoint_lib
from gen_jax.train import loop
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.metrics_log import LossWatch, drop_rows_after, read_metrics

from conftest import REPO_ROOT, TINY, cli_env


@pytest.fixture(scope="module")
def tiny_run(make_config, tmp_path_factory):
  """A 30-step MLP VAE with checkpoints at steps 10, 20 and 30 (tests copy it before changing it)."""
  root = tmp_path_factory.mktemp("reliability") / "run"
  config = make_config("configs/vae.py", *TINY, "train.num_steps=30")
  loop.train(config, root, progress=False)
  return root, config


def _copy(run: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  shutil.copytree(run, tmp_path / "run")
  return tmp_path / "run"


def _largest_file(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


# 1. Checksums ---------------------------------------------------------------------------------------------------

def test_changed_bytes_in_the_latest_checkpoints_are_detected_and_the_previous_one_is_used(tiny_run, tmp_path,
                                                                                           capsys):
  run, config = tiny_run
  workdir = _copy(run, tmp_path)
  ckpt = workdir / "checkpoints"
  # 30: 4096 random bytes in the middle of its largest data file (the experiment).
  big = _largest_file(ckpt / "30" / "state")
  data = bytearray(big.read_bytes())
  mid = len(data) // 2
  data[mid:mid + 4096] = np.random.default_rng(0).integers(0, 256, min(4096, len(data) - mid), np.uint8).tobytes()
  big.write_bytes(bytes(data))
  # 20: arrays that decode to finite numbers but are not the ones saved (step 10's state in step 20's folder):
  # restored silently before checksums existed.
  shutil.rmtree(ckpt / "20" / "state")
  shutil.copytree(ckpt / "10" / "state", ckpt / "20" / "state")
  state, meta, step = Checkpoints(workdir).restore_latest_good(loop.setup(config).abstract_state())
  out = capsys.readouterr().out
  assert step == 10 and meta["step"] == 10
  assert "checkpoint at step 30 is unreadable" in out
  assert "checkpoint at step 20 is unreadable" in out and "sha256" in out
  assert sorted(p.name for p in (workdir / "checkpoints_corrupt").iterdir()) == ["20", "30"]
  assert Checkpoints(workdir).steps() == [10]


def test_a_checkpoint_without_a_checksum_restores_with_a_note(tiny_run, tmp_path, capsys):
  """Checkpoints written before this version (no state_spec, no digest in meta) still restore."""
  run, config = tiny_run
  workdir = _copy(run, tmp_path)
  meta_file = workdir / "checkpoints" / "30" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  for key in ("state_spec", "state_digest", "gen_jax_checkpoint_format"):
    del meta[key]
  meta_file.write_text(json.dumps(meta))
  _, _, step = Checkpoints(workdir).restore_latest_good(loop.setup(config).abstract_state())
  assert step == 30
  assert "was written before checkpoints carried a checksum" in capsys.readouterr().out


# 2. A config that does not match the checkpoint is a ConfigError; eval.py refuses model/data overrides ----------

def test_a_shape_mismatch_is_a_config_error_and_moves_nothing(tiny_run, make_config, tmp_path):
  run, _ = tiny_run
  workdir = _copy(run, tmp_path)
  other = make_config("configs/vae.py", *TINY, "train.num_steps=30", "model.latent_dim=10")
  with pytest.raises(ConfigError, match=r"checkpoints/30 does not match the model this config builds: .*"
                                        r"float32\(50, 200\) in the checkpoint, float32\(10, 200\) in the model"):
    Checkpoints(workdir).restore_latest_good(loop.setup(other).abstract_state())
  assert not (workdir / "checkpoints_corrupt").exists()
  assert Checkpoints(workdir).steps() == [10, 20, 30]


def test_eval_refuses_model_and_data_overrides_before_restoring_anything(tiny_run, tmp_path):
  from gen_jax.eval.evaluate import evaluate_workdir
  run, _ = tiny_run
  workdir = _copy(run, tmp_path)
  for override in ("model.latent_dim=10", "config.data.num_train=10"):
    with pytest.raises(ConfigError, match=r"eval\.py evaluates a checkpoint with the config it was trained with"):
      evaluate_workdir(workdir, overrides=[override], progress=False)
  assert not (workdir / "checkpoints_corrupt").exists() and not (workdir / "eval").exists()


def test_eval_on_a_workdir_without_checkpoints_creates_nothing(tiny_run, tmp_path):
  from gen_jax.eval.evaluate import evaluate_workdir
  run, _ = tiny_run
  workdir = tmp_path / "untrained"
  workdir.mkdir()
  shutil.copy(run / "config.json", workdir / "config.json")
  with pytest.raises(CheckpointError, match="no checkpoint in .*train first"):
    evaluate_workdir(workdir, progress=False)
  assert sorted(p.name for p in workdir.iterdir()) == ["config.json"]


# 3. No silent restart -------------------------------------------------------------------------------------------

def test_a_workdir_with_quarantined_checkpoints_or_metrics_is_not_restarted_silently(make_config, tmp_path):
  config = make_config("configs/vae.py", *TINY, "train.num_steps=30")
  (tmp_path / "checkpoints_corrupt" / "20").mkdir(parents=True)
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (5, 10, 15, 20, 25)))
  with pytest.raises(ConfigError, match=r"holds an earlier run but no readable checkpoint \(unreadable checkpoints "
                                        r"moved to .*checkpoints_corrupt \(20\); .*logged up to step 25\).*--restart"):
    loop.train(config, tmp_path, progress=False)
  moved = checkpoint_lib.move_run_aside(tmp_path)
  assert moved.name.startswith("restarted_")
  assert sorted(p.name for p in moved.iterdir()) == ["checkpoints_corrupt", "metrics.jsonl"]
  assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [moved.name]
  # Rows of a run stopped before its first checkpoint committed (killed during that save, which runs in the
  # background while training goes on to the second) are no such trace.
  checkpoint_lib.refuse_silent_restart(tmp_path, 20, 10)
  with pytest.raises(ConfigError, match="logged up to step 25"):
    checkpoint_lib.refuse_silent_restart(tmp_path, 25, 10)


# 4. Atomic writes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_metrics_json_intact(tmp_path, monkeypatch, failing):
  path = tmp_path / "eval" / "metrics.json"
  atomic.write_json_atomic(path, {"metrics": {f"m{i}": i for i in range(45)}})
  before = path.read_bytes()

  def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(atomic.os, failing, disk_full)
  with pytest.raises(OSError, match="No space left"):
    atomic.write_json_atomic(path, {"metrics": {"m0": 0}, "padding": "x" * 100000})
  monkeypatch.undo()
  assert path.read_bytes() == before
  assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]   # the temporary file is gone


def test_files_read_back_are_not_written_with_plain_write_text():
  """Every file the project writes and reads back goes through storage/atomic.py (grep for the old pattern)."""
  offenders = []
  for path in [*(REPO_ROOT / "gen_jax").rglob("*.py"), REPO_ROOT / "train.py", REPO_ROOT / "eval.py"]:
    for i, line in enumerate(path.read_text().splitlines(), 1):
      if ".write_text(" in line and "storage/atomic" not in str(path) and "images.py" not in path.name:
        offenders.append(f"{path.relative_to(REPO_ROOT)}:{i}: {line.strip()}")
  assert offenders == []


# 5. Disk full while saving a checkpoint -------------------------------------------------------------------------

def test_disk_full_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(make_config, tmp_path, monkeypatch):
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch
  original = jch.JsonCheckpointHandler._save_fn

  async def save_fn(self, x, directory):   # orbax's own background write of the meta item fails at step 20
    if isinstance(x, dict) and x.get("step") == 20:
      (directory / "metadata").write_text('{"partial')
      raise OSError(errno.ENOSPC, "No space left on device")
    return await original(self, x, directory)

  monkeypatch.setattr(jch.JsonCheckpointHandler, "_save_fn", save_fn)
  # schedule_steps=30: the learning-rate schedule of tiny_run, so both compile the same programs once (the tests'
  # compilation cache) and this run still ends on the failed save.
  config = make_config("configs/vae.py", *TINY, "train.num_steps=20", "train.schedule_steps=30")
  with pytest.raises(CheckpointError) as e:
    loop.train(config, tmp_path, progress=False)
  msg = str(e.value)
  assert "\n" not in msg
  assert msg.startswith(f"saving the checkpoint of step 20 to {tmp_path / 'checkpoints'} failed: no space left")
  assert f"the last good checkpoint, {tmp_path / 'checkpoints' / '10'} (step 10), is intact" in msg
  assert "free disk space" in msg and "another --workdir" in msg
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10"]   # no orbax tmp folder left
  monkeypatch.undo()
  _, _, step = Checkpoints(tmp_path).restore_latest_good(loop.setup(config).abstract_state())
  assert step == 10


# 6. One writer per workdir --------------------------------------------------------------------------------------

_HOLD = ("import sys, time\nfrom gen_jax.storage.lock import FolderLock\nFolderLock(sys.argv[1], 'test').acquire()\n"
         "print('locked', flush=True)\ntime.sleep(120)\n")


def _hold_lock(folder: pathlib.Path) -> subprocess.Popen:
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  return proc


def test_a_second_writer_is_refused_naming_the_holder_and_the_lock_dies_with_it(tmp_path):
  from gen_jax.storage.lock import held_by_another
  assert not held_by_another(tmp_path)   # no lock file
  holder = _hold_lock(tmp_path)
  try:
    assert held_by_another(tmp_path)     # what `gen_jax.study --status` shows as "running now"
    with pytest.raises(FolderLockedError, match=rf"is in use by pid {holder.pid} on .*, started .*, command: "):
      FolderLock(tmp_path, "train.py").acquire()
    # train.py itself exits at once (before importing JAX), exit code 2, one line.
    proc = subprocess.run([sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={tmp_path}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], proc.stderr
  finally:
    holder.kill()
    holder.wait()
  assert not held_by_another(tmp_path)   # the lock file is left, the lock is not
  with FolderLock(tmp_path, "train.py"):   # a killed holder leaves no stale lock
    with FolderLock(tmp_path, "train.py"):   # re-entrant within one process
      assert not held_by_another(tmp_path)   # this process's own lock is not another's


def test_a_lock_held_for_an_instant_by_a_probe_does_not_fail_a_writer(tmp_path):
  """`gen_jax.study --status` probes run locks by taking them for an instant; a writer starting at that moment
  waits it out (up to half a second) instead of failing as if another run held the folder."""
  import fcntl
  import threading
  (tmp_path / ".lock").write_text("")
  probe = open(tmp_path / ".lock")
  fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
  threading.Timer(0.15, lambda: fcntl.flock(probe, fcntl.LOCK_UN)).start()
  with FolderLock(tmp_path, "train.py"):
    pass
  probe.close()


def test_a_second_eval_on_the_same_workdir_is_refused(tiny_run, tmp_path):
  from gen_jax.eval.evaluate import evaluate_workdir
  run, _ = tiny_run
  workdir = _copy(run, tmp_path)
  holder = _hold_lock(workdir / "eval")
  try:
    with pytest.raises(FolderLockedError, match=rf"{workdir / 'eval'} is in use by pid {holder.pid}"):
      evaluate_workdir(workdir, progress=False)
  finally:
    holder.kill()
    holder.wait()


# 7. Early Ctrl-C; 8. --workdir naming a file ----------------------------------------------------------------------

def _train_cmd(workdir, shared_data_dir, tfds_cache_dir, *extra):
  return [sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={workdir}", "--no_progress",
          f"--config.data.data_dir={shared_data_dir}", f"--config.data.tfds_dir={tfds_cache_dir}",
          *(f"--config.{o}" for o in TINY), *extra]


@pytest.mark.parametrize("delay", [0.5, 1.0, 3.0])
def test_an_early_ctrl_c_stops_train_py_with_exit_130(shared_data_dir, tfds_cache_dir, tmp_path, delay):
  cmd = _train_cmd(tmp_path / "run", shared_data_dir, tfds_cache_dir, "--config.train.num_steps=200")
  proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=cli_env())
  time.sleep(delay)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=180)
  assert proc.returncode == 130, (out, err)
  assert "\ndone: step" not in out, (out, err)
  assert "Traceback" not in err and "Exception ignored" not in err, err
  assert err.strip().splitlines()[-1].startswith("interrupted (Ctrl-C)")


def test_a_workdir_naming_a_file_is_one_line_before_any_data_is_loaded(tmp_path):
  target = tmp_path / "a_file"
  target.write_text("not a folder")
  proc = subprocess.run([sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={target}",
                         "--config.data.data_dir=/nonexistent"], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=120, env=cli_env())
  assert proc.returncode == 2
  assert proc.stderr.strip() == (f"error: --workdir={target} names an existing file, not a folder: pass a folder "
                                 "(a new one, or a run's).")


# Minor items ----------------------------------------------------------------------------------------------------

def test_rows_logged_after_the_restored_step_are_dropped(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"step": s, "split": "train", "loss": float(s)} for s in (5, 10, 15, 20)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 25, "lo')   # torn by a kill
  assert read_metrics(path)[-1]["step"] == 20   # a torn last line is skipped on reading
  assert drop_rows_after(path, 10) == 3
  assert [r["step"] for r in read_metrics(path)] == [5, 10]


def test_an_existing_but_empty_data_dir_is_an_error_even_with_a_prepared_copy(tfds_cache_dir, tmp_path):
  from gen_jax.data import load_dataset
  config = config_lib.load_config_file(str(REPO_ROOT / "configs/vae.py"))
  config_lib.apply_overrides(config, [f"data.data_dir={tmp_path}", f"data.tfds_dir={tfds_cache_dir}"])
  with pytest.raises(DatasetError, match=r"(?s)Raw mnist IDX files not found.*config data.data_dir: "
                                         rf"{tmp_path / 'mnist'} \(no such folder\)"):
    load_dataset(config.data)


def test_a_loss_that_grows_by_orders_of_magnitude_warns_once():
  watch = LossWatch()
  assert watch.check(5, {"loss": 200.0, "kl": 3.0}) == []
  assert watch.check(10, {"loss": 2e5, "kl": 1e9}) == []          # 1000x: not yet; kl is not a loss
  lines = watch.check(15, {"loss": 3e6})
  assert len(lines) == 1 and lines[0].startswith("WARNING: loss is 3e+06 at step 15, 1.5e+04x its first logged")
  assert watch.check(20, {"loss": 1e12}) == []                     # once per metric
  assert LossWatch().check(5, {"d_loss": -1.0}) == [] and LossWatch().check(5, {"g_loss": float("nan")}) == []


def test_raising_num_steps_at_a_resume_names_the_schedule_that_changes_and_schedule_steps_keeps_it(tmp_path):
  def load(*overrides):
    return config_lib.apply_overrides(config_lib.load_config_file(str(REPO_ROOT / "configs/vae.py")), list(overrides))

  config_lib.save_config(load("train.num_steps=200"), tmp_path / "config.json")
  note = loop._schedule_change_note(tmp_path, load("train.num_steps=400"))
  assert note(200).startswith("note: the learning-rate schedules now span 400 steps instead of 200: "
                              "config.optimizer.schedule='constant_cosine' spans the run's steps, so its "
                              "rate at step 200 goes from 0.0001 (the 200-step schedule) to 0.001 (a 400-step one)")
  assert note(200).endswith("add --config.train.schedule_steps=200.")
  assert loop._schedule_change_note(tmp_path, load("train.num_steps=200")) is None
  assert loop._schedule_change_note(tmp_path, load("train.num_steps=400", "optimizer.schedule=constant")) is None
  # Extending with schedule_steps = the old num_steps keeps the schedule: no note, and the optimizer's rate at every
  # step is the 200-step schedule's (held at its final value past step 200).
  kept = load("train.num_steps=400", "train.schedule_steps=200")
  assert loop._schedule_change_note(tmp_path, kept) is None
  assert optim.schedule_horizon(kept) == 200 and optim.schedule_horizon(load("train.num_steps=400")) == 400
  original = optim.make_schedule(load("train.num_steps=200").optimizer, 200)
  extended = optim.make_schedule(kept.optimizer, optim.schedule_horizon(kept))
  assert [float(extended(t)) for t in (0, 150, 199, 300)] == [float(original(t)) for t in (0, 150, 199, 300)]
