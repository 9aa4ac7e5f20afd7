"""Review fixes (brief O): only evidence of damage quarantines a checkpoint, readers never move one; the training
loop's throughput and wall-time accounting; the per-channel binarization key of Stacked MNIST.

The damage cases below are what orbax/tensorstore raise for each kind of broken file (measured on this version):
checkpoint._damage recognizes exactly these; any other restore error is a CheckpointError and nothing moves.
"""
from __future__ import annotations

import errno
import json
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import load_dataset
from gen_jax.errors import CheckpointError
from gen_jax.train import loop
from gen_jax.train.checkpoint import CORRUPT_DIR, Checkpoints
from gen_jax.train.metrics_log import read_metrics

from conftest import TINY

STATE = {"a": jnp.arange(3000.0), "b": jnp.ones((50, 20)), "k": jnp.zeros(7, jnp.int32)}


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory) -> pathlib.Path:
  """A workdir with checkpoints 1 and 2 of a small pytree (tests copy it before changing it)."""
  root = tmp_path_factory.mktemp("ckpt_errors") / "run"
  ckpts = Checkpoints(root, async_save=False)
  ckpts.save(1, STATE, {"step": 1})
  ckpts.save(2, jax.tree.map(lambda x: x + 1, STATE), {"step": 2})
  ckpts.close()
  return root


def _copy(src: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  shutil.copytree(src, tmp_path / "run")
  return tmp_path / "run"


def _largest(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _random_mid(step: pathlib.Path):
  f = _largest(step / "state")
  data = bytearray(f.read_bytes())
  mid = len(data) // 2
  data[mid:mid + 4096] = np.random.default_rng(0).integers(0, 256, min(4096, len(data) - mid), np.uint8).tobytes()
  f.write_bytes(bytes(data))


def _garbage_everything(step: pathlib.Path):
  for f in step.rglob("*"):
    if f.is_file() and f.stat().st_size > 0:
      f.write_bytes(b"\x00garbage" * 3)


DAMAGE = {
    "4096 random bytes mid data file": _random_mid,                        # FAILED_PRECONDITION: ZSTD ... corruption
    "truncated data file": lambda d: _largest(d / "state").write_bytes(_largest(d / "state").read_bytes()[:100]),
    "emptied data file": lambda d: _largest(d / "state").write_bytes(b""),                         # OUT_OF_RANGE
    "deleted data file": lambda d: _largest(d / "state").unlink(),
    "deleted _METADATA": lambda d: (d / "state" / "_METADATA").unlink(),                      # FileNotFoundError
    "garbled _METADATA": lambda d: (d / "state" / "_METADATA").write_text('{"x'),              # JSONDecodeError
    "binary _sharding": lambda d: (d / "state" / "_sharding").write_bytes(b"\xff\xfe" * 50),   # Invalid JSON
    "deleted manifest": lambda d: (d / "state" / "manifest.ocdbt").unlink(),                   # NOT_FOUND
    "garbled manifest": lambda d: (d / "state" / "manifest.ocdbt").write_bytes(b"\x00garbage" * 3),   # DATA_LOSS
    "deleted state item": lambda d: shutil.rmtree(d / "state"),                      # KeyError: ... not found
    "empty step folder": lambda d: [shutil.rmtree(c) if c.is_dir() else c.unlink() for c in list(d.iterdir())],
    "garbled meta": lambda d: (d / "meta" / "metadata").write_text("{garbage"),
    "binary meta": lambda d: (d / "meta" / "metadata").write_bytes(b"\xff\xfe" * 50),      # UnicodeDecodeError
    "meta not an object": lambda d: (d / "meta" / "metadata").write_text("[1, 2]"),
    "garbage in every file": _garbage_everything,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_detected_and_the_previous_checkpoint_used(two_steps, tmp_path, capsys, damage):
  workdir = _copy(two_steps, tmp_path)
  DAMAGE[damage](workdir / "checkpoints" / "2")
  abstract = jax.eval_shape(lambda: STATE)
  # A reader: falls back, says so, moves nothing.
  state, meta, step = Checkpoints(workdir).restore_latest_good(abstract, quarantine=False)
  assert step == 1 and meta["step"] == 1
  np.testing.assert_array_equal(np.asarray(state["a"]), np.arange(3000.0))
  out = capsys.readouterr().out
  assert "checkpoint at step 2 is unreadable" in out and "left it in place" in out
  assert not (workdir / CORRUPT_DIR).exists() and Checkpoints(workdir).steps() == [1, 2]
  # The owner of the workdir (train.py): falls back and moves the damaged step aside.
  _, _, step = Checkpoints(workdir).restore_latest_good(abstract)
  assert step == 1 and "moved it to" in capsys.readouterr().out
  assert [p.name for p in (workdir / CORRUPT_DIR).iterdir()] == ["2"] and Checkpoints(workdir).steps() == [1]


def _oom_wrapped_by_orbax():
  try:
    raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.0GiB")
  except RuntimeError as e:   # what orbax's array read does with any failure
    raise Exception("Encountered error while reading array index: (slice(0, 3000, 1),).") from e


def _raise(e):
  raise e


ERRORS = {   # name: (raise it, what the message must name)
    "out of memory": (lambda: _raise(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4.0GiB")),
                      "(RuntimeError: RESOURCE_EXHAUSTED: Out of memory"),
    "out of memory inside orbax's read": (_oom_wrapped_by_orbax, "(RuntimeError: RESOURCE_EXHAUSTED: Out of memory"),
    "MemoryError": (lambda: _raise(MemoryError()), "(MemoryError: )"),
    "permission denied": (lambda: _raise(PermissionError(errno.EACCES, "Permission denied", "state/_METADATA")),
                          "(PermissionError: [Errno 13] Permission denied"),
    "I/O error": (lambda: _raise(OSError(errno.EIO, "Input/output error")), "(OSError: [Errno 5] Input/output error)"),
    "tensorstore unavailable": (lambda: _raise(ValueError("UNAVAILABLE: Error reading local file: try again")),
                                "(ValueError: UNAVAILABLE: Error reading local file"),
}


@pytest.mark.parametrize("item", ["state", "meta"])
@pytest.mark.parametrize("error", list(ERRORS))
def test_an_error_that_does_not_show_damage_moves_nothing_and_says_what_failed(two_steps, tmp_path, monkeypatch,
                                                                              error, item):
  """The review's scenario: an out-of-memory while restoring moved both good checkpoints aside."""
  workdir = _copy(two_steps, tmp_path)
  ckpts = Checkpoints(workdir)
  original = ckpts.manager.restore

  def failing(step, args=None):
    if item in args.keys():
      ERRORS[error][0]()
    return original(step, args=args)

  monkeypatch.setattr(ckpts.manager, "restore", failing)
  abstract = jax.eval_shape(lambda: STATE)
  for step in (None, 2):   # the latest, and an explicitly requested step
    with pytest.raises(CheckpointError) as e:
      ckpts.restore_latest_good(abstract, step=step)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"restoring checkpoint {workdir / 'checkpoints' / '2'} failed {ERRORS[error][1]}"), msg
    assert "nothing was moved" in msg and "does not show that its files are damaged" in msg
  assert not (workdir / CORRUPT_DIR).exists()
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2"]


def test_all_checkpoints_damaged_a_reader_moves_nothing_and_says_what_to_do(two_steps, tmp_path, capsys):
  workdir = _copy(two_steps, tmp_path)
  for step in ("1", "2"):
    _garbage_everything(workdir / "checkpoints" / step)
  with pytest.raises(CheckpointError, match=r"none of the checkpoints .* could be read \(steps \[1, 2\]\); nothing "
                                            r"was moved\. Rerun train\.py on this workdir"):
    Checkpoints(workdir).restore_latest_good(jax.eval_shape(lambda: STATE), quarantine=False)
  assert not (workdir / CORRUPT_DIR).exists()


# A trained tiny run: eval.py on a damaged latest checkpoint, throughput and wall-time accounting ---------------

IMAGE_SECONDS = 0.3


@pytest.fixture(scope="module")
def two_batch_run(make_config, tmp_path_factory):
  """20 steps of an MLP VAE whose update reads two real batches (as a GAN with n_critic=2 does), image grids
  (IMAGE_SECONDS each) at steps 10 and 20, checkpoints at 10 and 20."""
  from gen_jax.models.family import Capabilities
  from gen_jax.models.vae import VaeFamily

  class TwoBatches(VaeFamily):
    @property
    def capabilities(self) -> Capabilities:
      return Capabilities(has_encoder=True, has_likelihood=True, batches_per_step=2)

  def slow_images(*args, **kwargs):   # stands in for writing the grids (compiling the sampler takes seconds)
    time.sleep(IMAGE_SECONDS)

  root = tmp_path_factory.mktemp("two_batch") / "run"
  config = make_config("configs/vae.py", *TINY, "train.num_steps=20", "train.sample_every=10")
  family = TwoBatches(config, load_dataset(config.data))
  with pytest.MonkeyPatch.context() as m:
    m.setattr(loop, "write_images", slow_images)
    loop.train(config, root, family=family, progress=False)
  return root, config, family


def test_examples_per_sec_counts_every_real_batch_a_step_reads(two_batch_run):
  root, config, _ = two_batch_run
  rows = [r for r in read_metrics(root / "metrics.jsonl") if r.get("split", "train") == "train"]
  assert rows
  for r in rows:
    assert r["examples_per_sec"] == pytest.approx(r["steps_per_sec"] * 2 * int(config.data.batch_size))


def test_the_time_of_training_images_and_evaluation_is_recorded_apart_and_old_checkpoints_resume(
    two_batch_run, tmp_path):
  root, config, family = two_batch_run
  meta = json.loads((root / "checkpoints" / "20" / "meta" / "metadata").read_text())
  # The grids of step 10 were written before step 20 was saved (those of step 20 after it).
  assert IMAGE_SECONDS <= meta["train_eval_seconds"] < 2 * IMAGE_SECONDS
  assert meta["train_wall_seconds"] > meta["train_eval_seconds"]
  # A checkpoint written before the key existed resumes (counting from 0) and the next one carries it.
  workdir = _copy(root, tmp_path)
  meta_file = workdir / "checkpoints" / "20" / "meta" / "metadata"
  old = {k: v for k, v in json.loads(meta_file.read_text()).items() if k != "train_eval_seconds"}
  meta_file.write_text(json.dumps(old))
  config.train.num_steps = 30
  config.train.sample_every = 0
  try:
    assert loop.train(config, workdir, family=family, progress=False)["step"] == 30
  finally:
    config.train.num_steps, config.train.sample_every = 20, 10
  resumed = json.loads((workdir / "checkpoints" / "30" / "meta" / "metadata").read_text())
  assert resumed["train_eval_seconds"] == 0.0 and resumed["train_wall_seconds"] > old["train_wall_seconds"]


def test_eval_on_a_damaged_latest_checkpoint_uses_the_previous_one_and_moves_nothing(two_batch_run, tmp_path,
                                                                                     capsys):
  """eval.py holds only eval/.lock: it must never move the checkpoints of a run that may be training."""
  from gen_jax.eval.evaluate import evaluate_workdir
  root, _, _ = two_batch_run
  workdir = _copy(root, tmp_path)
  _random_mid(workdir / "checkpoints" / "20")
  report = evaluate_workdir(workdir, overrides=["eval.suites=('modes',)"], progress=False)
  out = capsys.readouterr().out
  assert report["step"] == 10
  assert "checkpoint at step 20 is unreadable" in out and "left it in place" in out
  assert not (workdir / CORRUPT_DIR).exists()
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["10", "20"]


# Stacked MNIST: one binarization key per channel ------------------------------------------------------------------

def test_stacked_mnist_binarizes_each_channel_with_its_own_noise():
  from gen_jax.data.sampler import DeviceData, StackedMnistSampler
  n = 8
  data = DeviceData(images=jnp.full((n, 6, 6, 1), 128, jnp.uint8), labels=jnp.zeros(n, jnp.int32))
  sampler = StackedMnistSampler(n, 4, "dynamic")
  order_key = jax.random.key(0)
  out, _ = jax.jit(sampler.sample)(data, sampler.initial_order(order_key), order_key, jnp.int32(0),
                                  jax.random.key(1))
  image = np.asarray(out["image"])          # [4, 6, 6, 3], identical grey digits in every channel
  assert image.shape == (4, 6, 6, 3) and set(np.unique(image)) <= {0.0, 1.0}
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  assert not np.array_equal(r, g) and not np.array_equal(r, b) and not np.array_equal(g, b)
  for c in (r, g, b):
    assert 0.3 < c.mean() < 0.7   # Bernoulli(128/255) each


def test_a_checkpoint_from_before_new_ema_parameters_says_to_retrain_not_to_fix_the_config(tmp_path):
  """A VAE-GAN saved before its encoder kept EMA parameters: the message says why and what to do."""
  from gen_jax.errors import ConfigError as Cfg
  from gen_jax.train.checkpoint import Checkpoints, _spec_mismatch
  saved = [[".models['encoder'].params['w']", [3], "float32"]]
  target = saved + [[".models['encoder'].ema_params['w']", [3], "float32"]]
  ckpts = Checkpoints(tmp_path, async_save=False)
  try:
    err = ckpts._mismatch(7, _spec_mismatch(saved, target))
    assert isinstance(err, Cfg) and "older gen_jax" in str(err) and "--restart" in str(err)
    assert "encoder" in str(err) and "drop --config.model" not in str(err)
    other = ckpts._mismatch(7, _spec_mismatch(saved, [[".models['encoder'].params['w']", [4], "float32"]]))
    assert "use the config the run was trained with" in str(other)
  finally:
    ckpts.close()
