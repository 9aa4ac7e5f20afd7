"""The shared trainer: compiles once, same numbers on 1 and 8 devices, exact resume, failure handling."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.errors import CheckpointError, ConfigError, NonFiniteLossError
from gen_jax.train import loop
from gen_jax.train import step as step_lib
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.train.metrics_log import read_metrics
from gen_jax.models.vae import VaeFamily

from conftest import REPO_ROOT, TINY


def params_of(summary):
  return jax.device_get(summary["state"].models["vae"].params)


def assert_trees_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_step_compiles_once(make_config):
  config = make_config("configs/vae.py", *TINY)
  run = loop.setup(config)
  step = chex.assert_max_traces(step_lib.make_train_step(run.family, run.sampler), n=1)
  jitted = jax.jit(step, donate_argnums=0)
  state = run.init_state()
  for _ in range(4):
    state, metrics = jitted(state, run.data, run.keys)
  assert int(state.step) == 4
  assert np.isfinite(float(metrics["loss"]))
  # The loop's own compiled step: one cache entry after many calls.
  compiled = run.compile_train_step()
  for _ in range(3):
    state, _ = compiled(state, run.data, run.keys)
  assert compiled._cache_size() == 1


def _copied_weight_matrices(hlo: str) -> list[str]:
  """Entry parameters of rank >= 2 and type f32 (weight matrices and their optimizer moments) that the
  compiled step copies."""
  import re
  entry = hlo[hlo.index("ENTRY"):]
  params = dict(re.findall(r"%(\S+) = (f32\[\d+,[\d,]+\])\S* parameter\(", entry))
  return [name for name in re.findall(r"= \S+ copy\(%(\S+?)\)", entry) if name in params]


def test_vae_step_updates_donated_parameters_in_place(make_config):
  """No weight matrix of the state is copied before its update (models/state.py `ordered_after`): the
  input gradients and the parameter-norm metric read the old values, and without the ordering XLA copied
  every parameter first."""
  run = loop.setup(make_config("configs/vae.py", *TINY))
  state = run.init_state()
  hlo = run.compile_train_step().lower(state, run.data, run.keys).compile().as_text()
  assert "parameter(" in hlo and _copied_weight_matrices(hlo) == []
  # Without the ordering the same step does copy them (so the check above can fail).
  from gen_jax.models import state as state_lib
  original = state_lib.ordered_after
  state_lib.ordered_after = lambda tree, deps: tree
  try:
    hlo = run.compile_train_step().lower(state, run.data, run.keys).compile().as_text()
  finally:
    state_lib.ordered_after = original
  assert len(_copied_weight_matrices(hlo)) >= 2


def test_ordered_after_returns_the_values_unchanged_whatever_the_dependencies():
  from gen_jax.models.state import ordered_after
  tree = {"w": jnp.asarray([1.5, -2.0, 0.0, 3e38]), "b": jnp.asarray([7.0], jnp.bfloat16)}
  for deps in ((jnp.float32(2.0),), (jnp.float32(jnp.nan), jnp.float32(jnp.inf)), ()):
    out = jax.jit(ordered_after)(tree, deps)
    assert out["b"].dtype == jnp.bfloat16
    assert_trees_equal(out, tree)


def test_batches_follow_epoch_permutations(make_config):
  """Each epoch visits every example once; the order is a pure function of seed and step."""
  config = make_config("configs/vae.py", *TINY)
  run = loop.setup(config)
  sampler = run.sampler
  order = sampler.initial_order(run.keys["data_order"])
  seen = []
  sample = jax.jit(lambda order, step: sampler.sample(run.data, order, run.keys["data_order"], step,
                                                      jax.random.key(0)))
  for step in range(sampler.steps_per_epoch):
    batch, order = sample(order, step)
    seen.append(np.asarray(order[step * 32:(step + 1) * 32]))
  seen = np.concatenate(seen)
  assert len(np.unique(seen)) == len(seen) == sampler.steps_per_epoch * 32
  # Next epoch: a different permutation, identical when recomputed from scratch.
  _, order_e1 = sample(order, sampler.steps_per_epoch)
  np.testing.assert_array_equal(order_e1, sampler.epoch_permutation(run.keys["data_order"], 1))
  assert not np.array_equal(order_e1, sampler.epoch_permutation(run.keys["data_order"], 0))


def test_one_device_and_eight_devices_agree(make_config, tmp_path):
  assert jax.device_count() == 8, "conftest should fake 8 CPU devices"
  config = make_config("configs/vae.py", *TINY, "train.num_steps=12")
  one = loop.train(config, tmp_path / "one", mesh=parallel.make_mesh(jax.devices()[:1]), progress=False)
  eight = loop.train(config, tmp_path / "eight", mesh=parallel.make_mesh(), progress=False)
  assert one["state"].models["vae"].params["encoder"] is not None
  chex.assert_trees_all_close(params_of(one), params_of(eight), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(one["metrics"]["loss"], eight["metrics"]["loss"], rtol=1e-5)
  losses_one = [r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl")]
  losses_eight = [r["loss"] for r in read_metrics(tmp_path / "eight" / "metrics.jsonl")]
  np.testing.assert_allclose(losses_one, losses_eight, rtol=1e-5)


def test_interrupted_run_resumes_exactly(make_config, tmp_path):
  config = make_config("configs/vae.py", *TINY, "train.num_steps=20", "optimizer.schedule=cosine")
  full = loop.train(config, tmp_path / "full", progress=False)
  part = loop.train(config, tmp_path / "resumed", progress=False, interrupt_at=7)
  assert part["step"] == 7 and part["stopped_by"]
  assert Checkpoints(tmp_path / "resumed").latest_step() == 7
  with open(tmp_path / "resumed" / "metrics.jsonl", "a") as f:   # rows a killed process logged after step 7
    f.write('{"step": 10, "split": "train", "loss": 1.0}\n{"step": 11, "spl')
  resumed = loop.train(config, tmp_path / "resumed", progress=False)
  assert resumed["step"] == 20
  steps = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl")]
  assert steps == sorted(set(steps)) and steps[-1] == 20   # no step logged twice, none out of order
  assert_trees_equal(params_of(full), params_of(resumed))
  assert_trees_equal(jax.device_get(full["state"].models["vae"].opt_state),
                     jax.device_get(resumed["state"].models["vae"].opt_state))


class NaNAfter(VaeFamily):
  """A VAE whose gradients turn NaN from step `k` on (simulates a diverging run)."""
  k = 12

  def update_models(self, models, batch, key, step):
    new, metrics = super().update_models(models, batch, key, step)
    poison = jnp.where(step >= self.k, jnp.nan, 0.0)
    new = {"vae": new["vae"].replace(params=jax.tree.map(lambda p: p + poison, new["vae"].params))}
    metrics = dict(metrics, loss=metrics["loss"] + poison)
    return new, metrics


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(make_config, tmp_path):
  config = make_config("configs/vae.py", *TINY, "train.num_steps=40")
  run_family = NaNAfter(config, loop.setup(config).dataset)
  with pytest.raises(NonFiniteLossError, match=r"(?s)at step 15.*last good checkpoint \(step 10\)"):
    loop.train(config, tmp_path, family=run_family, progress=False)
  ckpts = Checkpoints(tmp_path)
  assert ckpts.steps() == [10]
  run = loop.setup(config)
  state, _, step = ckpts.restore_latest_good(run.abstract_state())
  assert step == 10
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.models["vae"].params)))


def _corrupt(step_dir: pathlib.Path):
  for f in step_dir.rglob("*"):
    if f.is_file() and f.stat().st_size > 0:
      f.write_bytes(b"\x00garbage" * 3)


def test_corrupt_latest_checkpoint_falls_back_to_previous(make_config, tmp_path, capsys):
  config = make_config("configs/vae.py", *TINY, "train.num_steps=20")
  loop.train(config, tmp_path, progress=False)
  assert Checkpoints(tmp_path).steps() == [10, 20]
  _corrupt(tmp_path / "checkpoints" / "20")
  config.train.num_steps = 30
  summary = loop.train(config, tmp_path, progress=False)
  out = capsys.readouterr().out
  assert "checkpoint at step 20 is unreadable" in out and "Resuming from" in out and "(step 10)" in out
  assert summary["step"] == 30
  assert (tmp_path / "checkpoints_corrupt" / "20").is_dir()  # kept for inspection, not deleted
  # An explicitly requested unreadable step is an error naming it.
  _corrupt(tmp_path / "checkpoints" / "30")
  run = loop.setup(config)
  with pytest.raises(CheckpointError, match=r"checkpoints/30 cannot be read"):
    Checkpoints(tmp_path).restore_latest_good(run.abstract_state(), step=30)


def test_resume_with_a_different_model_config_is_refused(make_config, tmp_path):
  config = make_config("configs/vae.py", *TINY, "train.num_steps=5")
  loop.train(config, tmp_path, progress=False)
  other = make_config("configs/vae.py", *TINY, "train.num_steps=5", "model.latent_dim=8")
  with pytest.raises(Exception, match=r"config\.model\.latent_dim differ"):
    loop.train(other, tmp_path, progress=False)
  # A run saved before a field existed: the message says which default it was trained with.
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["optimizer"]["final_lr_fraction"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(Exception, match=r"final_lr_fraction is newer than the run: it was trained with today's "
                                      r"default 0\.0, pass --config\.optimizer\.final_lr_fraction=0\.0 to resume"):
    loop.train(make_config("configs/vae.py", *TINY, "train.num_steps=5", "optimizer.final_lr_fraction=0.5"),
               tmp_path, progress=False)
  loop.train(make_config("configs/vae.py", *TINY, "train.num_steps=6", "optimizer.final_lr_fraction=0.0"),
             tmp_path, progress=False)   # ... and that resumes


def test_resume_ignores_only_the_schedule_fields_the_schedule_does_not_read(make_config, tmp_path):
  from gen_jax import config as config_lib
  constant = ("optimizer.schedule=constant", "optimizer.final_lr_fraction=0.0")
  config_lib.save_config(make_config("configs/vae.py", *TINY, *constant), tmp_path / "config.json")
  # A constant rate does not read final_lr_fraction or decay_fraction: the run is the same run.
  loop._check_resume_config(tmp_path, make_config("configs/vae.py", *TINY, "optimizer.schedule=constant",
                                                  "optimizer.final_lr_fraction=0.1", "optimizer.decay_fraction=0.5"))
  # ... but it reads warmup_steps, and another schedule is another run.
  with pytest.raises(ConfigError, match=r"config\.optimizer\.warmup_steps differ"):
    loop._check_resume_config(tmp_path, make_config("configs/vae.py", *TINY, *constant, "optimizer.warmup_steps=10"))
  with pytest.raises(ConfigError, match=r"config\.optimizer\.final_lr_fraction, config\.optimizer\.schedule differ"):
    loop._check_resume_config(tmp_path, make_config("configs/vae.py", *TINY, "optimizer.schedule=cosine",
                                                    "optimizer.final_lr_fraction=0.1"))
  # constant_cosine reads final_lr_fraction (configs/vae.py's own schedule).
  config_lib.save_config(make_config("configs/vae.py", *TINY), tmp_path / "config.json")
  with pytest.raises(ConfigError, match=r"config\.optimizer\.final_lr_fraction differ"):
    loop._check_resume_config(tmp_path, make_config("configs/vae.py", *TINY, "optimizer.final_lr_fraction=0.5"))
  loop._check_resume_config(tmp_path, make_config("configs/vae.py", *TINY, "optimizer.stage_steps=600"))


def test_sigterm_saves_checkpoint_and_exits_cleanly(shared_data_dir, tfds_cache_dir, tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "train.py", "--config=configs/vae.py", f"--workdir={workdir}", "--no_progress",
         f"--config.data.data_dir={shared_data_dir}", f"--config.data.tfds_dir={tfds_cache_dir}",
         *(f"--config.{o}" for o in TINY), "--config.train.num_steps=1000000", "--config.train.log_every=1",
         "--config.train.checkpoint_every=100000"]
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 120
  while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
    time.sleep(0.2)
  assert metrics.exists(), proc.communicate(timeout=30)[0]
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  assert "Stopped by SIGTERM" in out
  step = Checkpoints(workdir).latest_step()
  assert step is not None and step >= 1
  assert f"at step {step};" in out



def test_resume_with_another_model_family_says_so(tmp_path):
  """A GAN config on a VAE's workdir: 'holds a vae run', not 'config.gan is newer than the run'."""
  from gen_jax import config as config_lib
  load = lambda spec: config_lib.load_config_file(str(REPO_ROOT / spec))  # noqa: E731
  config_lib.save_config(load("configs/vae.py"), tmp_path / "config.json")
  with pytest.raises(ConfigError) as e:
    loop._check_resume_config(tmp_path, load("configs/gan.py"))
  msg = str(e.value)
  assert msg.startswith(f"{tmp_path} holds a vae run; this config trains a gan")
  assert "use another --workdir" in msg and f"delete {tmp_path} to start over" in msg
  assert "newer than the run" not in msg and "differ" not in msg
  # One differing key: "differs"; several: "differ".
  with pytest.raises(ConfigError, match=r"\(config\.data\.batch_size differs from "):
    loop._check_resume_config(tmp_path, config_lib.apply_overrides(load("configs/vae.py"), ["data.batch_size=7"]))
  with pytest.raises(ConfigError, match=r"\(config\.data\.batch_size, config\.model\.latent_dim differ from "):
    loop._check_resume_config(tmp_path, config_lib.apply_overrides(load("configs/vae.py"),
                                                                   ["data.batch_size=7", "model.latent_dim=3"]))


def test_resume_onto_a_corrupt_config_json_is_a_checkpoint_error(tmp_path):
  from gen_jax import config as config_lib
  config = config_lib.load_config_file(str(REPO_ROOT / "configs/vae.py"))
  (tmp_path / "config.json").write_text('{"seed": 0, "data": {"na')
  with pytest.raises(CheckpointError, match=rf"{tmp_path / 'config.json'} \(the config this run was trained with\) "
                                            r"is not valid JSON .*Fix: restore it"):
    loop.train(config, tmp_path, progress=False)


def test_rerun_of_a_finished_run_trains_nothing_and_says_so(make_config, tmp_path):
  loop.train(make_config("configs/vae.py", *TINY, "train.num_steps=5"), tmp_path, progress=False)
  summary = loop.train(make_config("configs/vae.py", *TINY, "train.num_steps=3"), tmp_path, progress=False)
  assert (summary["step"], summary["start_step"], summary["num_steps"], summary["metrics"]) == (5, 5, 3, {})
  assert loop.done_message(summary).startswith("already at step 5 >= config.train.num_steps=3: nothing to train")
  saved = config_lib.load_saved_config(tmp_path / "config.json")
  assert saved.train.num_steps == 5     # config.json still describes the run as trained
