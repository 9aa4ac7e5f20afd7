"""GAN and VAE-GAN families on the shared trainer: one compiled update, exact resume, mode coverage."""
import json
import subprocess
import sys

import chex
import jax
import numpy as np

from gen_jax import parallel
from gen_jax.train import loop
from gen_jax.train import step as step_lib
from gen_jax.train.metrics_log import read_metrics

from conftest import REPO_ROOT, TINY, cli_env


def test_gan_update_with_critic_steps_compiles_once(make_config):
  config = make_config("configs/gan.py:wgan_gp", *TINY, "model.g_width=8", "model.d_width=8", "data.batch_size=16")
  run = loop.setup(config, parallel.make_mesh(jax.devices()[:2]))
  assert run.sampler.batch_size == 16 * 5  # one real batch per critic step
  step = chex.assert_max_traces(step_lib.make_train_step(run.family, run.sampler), n=1)
  jitted = jax.jit(step, donate_argnums=0)
  state = run.init_state()
  d0 = jax.device_get(state.models["discriminator"].opt_state)
  for _ in range(3):
    state, metrics = jitted(state, run.data, run.keys)
  metrics = jax.device_get(metrics)
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "gradient_penalty",
              "sample_diversity"):
    assert np.isfinite(metrics[key]), key
  # Five discriminator updates per generator update: Adam's count says so.
  d_count = [x for x in jax.tree.leaves(jax.device_get(state.models["discriminator"].opt_state))
             if np.asarray(x).dtype == np.int32]
  g_count = [x for x in jax.tree.leaves(jax.device_get(state.models["generator"].opt_state))
             if np.asarray(x).dtype == np.int32]
  assert int(d_count[0]) == 15 and int(g_count[0]) == 3
  del d0


def test_gan_resume_is_exact_with_ema_batchnorm_and_spectral_norm(make_config, tmp_path):
  """Two models, EMA, batch-norm statistics and spectral-norm vectors all survive an interruption."""
  config = make_config("configs/gan.py:conditional,hinge", *TINY, "model.g_width=8", "model.d_width=8",
                       "data.batch_size=16", "train.num_steps=8")
  mesh = parallel.make_mesh(jax.devices()[:1])   # GANs on several devices: test_gan_update_..., test_vaegan_...
  full = loop.train(config, tmp_path / "full", progress=False, mesh=mesh)
  loop.train(config, tmp_path / "resumed", progress=False, interrupt_at=3, mesh=mesh)
  resumed = loop.train(config, tmp_path / "resumed", progress=False, mesh=mesh)
  assert resumed["step"] == 8
  chex.assert_trees_all_equal(jax.device_get(full["state"].models), jax.device_get(resumed["state"].models))
  gen = full["state"].models["generator"]
  assert gen.ema_params is not None and gen.collections      # EMA and batch stats exist
  assert full["state"].models["discriminator"].collections   # spectral-norm vectors exist


def test_ring_gan_covers_all_eight_modes(tmp_path):
  """The default toy config, fixed seed, CPU seconds: every mode of the ring gets high-quality samples, counted by
  the mode metrics logged during training (2500 samples every 1000 steps, 3 standard deviations, the protocol of
  eval.py's `modes` group, which test_eval_on_a_mixture_run_writes_mode_metrics runs through eval.py)."""
  train = subprocess.run([sys.executable, "train.py", "--config=configs/gan_toy.py", f"--workdir={tmp_path}",
                          "--no_progress", "--config.train.sample_every=0"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=600, env=cli_env())
  assert train.returncode == 0, train.stderr[-3000:]
  curve = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
  assert [r["step"] for r in curve] == [1000, 2000, 3000, 4000, 5000]
  assert curve[-1]["modes_covered"] == 8 and curve[-1]["high_quality_fraction"] > 0.5, curve[-1]
  protocol = json.loads((tmp_path / "training_eval.json").read_text())
  assert protocol["num_samples"] == 2500 and protocol["high_quality"] == "within 3.0 std of the nearest mode"
  assert protocol["mode_covered_if"] == ">= 31 high-quality samples"      # 10% of 2500 / 8, as eval.py


def test_eval_on_a_mixture_run_writes_mode_metrics(shared_data_dir, tfds_cache_dir, tmp_path):
  workdir = tmp_path / "toy"
  train = subprocess.run([sys.executable, "train.py", "--config=configs/gan_toy.py:grid,runlocal",
                          f"--workdir={workdir}", "--no_progress"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=300)
  assert train.returncode == 0, train.stderr[-3000:]
  assert (workdir / "images" / "samples_0000050.png").exists()
  ev = subprocess.run([sys.executable, "eval.py", f"--workdir={workdir}", "--no_progress"], cwd=REPO_ROOT,
                      capture_output=True, text=True, timeout=300)
  assert ev.returncode == 0, ev.stderr[-3000:]
  report = json.loads((workdir / "eval" / "metrics.json").read_text())
  m = report["metrics"]
  assert 0 <= m["modes_covered"] <= 25 and 0.0 <= m["high_quality_fraction"] <= 1.0
  assert m["num_modes"] == 25
  assert report["protocol"]["modes"]["num_samples"] == 2500 and report["protocol"]["seed"] == 0
  from gen_jax.report import mode_table   # the results-table script reads what eval.py wrote today
  row = mode_table.row_for(workdir)
  assert row["modes"] == f"{m['modes_covered']} / 25" and row["hq"] == m["high_quality_fraction"]
  assert row["protocol"].startswith("2500 samples from the ") and "seed 0; data grid25" in row["protocol"]


def test_vaegan_trains_and_logs_each_networks_loss(make_config, tmp_path):
  config = make_config("configs/vaegan.py:conditional", *TINY, "model.g_width=8", "model.d_width=8",
                       "model.features=(8, 16)", "data.batch_size=16", "train.num_steps=4", "train.log_every=2")
  summary = loop.train(config, tmp_path, progress=False, mesh=parallel.make_mesh(jax.devices()[:2]))
  assert set(summary["state"].models) == {"encoder", "decoder", "discriminator"}
  rows = read_metrics(tmp_path / "metrics.jsonl")
  for key in ("enc_loss", "dec_loss", "dis_loss", "kl", "llike", "gan_d", "gan_g", "recon_mse"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert all(r["kl"] >= 0 for r in rows)
