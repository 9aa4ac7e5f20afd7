"""Sample quality measured during training (config.train.eval_every): rows, protocol, determinism, skips."""
import json
import os
import signal
import threading
import types

import jax
import numpy as np
import pytest

from conftest import TINY
from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax.report import curves
from gen_jax.train import loop
from gen_jax.train.metrics_log import read_metrics
from gen_jax.eval.training_eval import TrainingEval, make_training_evaluator

GAN_TINY = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")


def test_gan_logs_the_frechet_distance_every_n_steps_with_its_protocol(make_config, tmp_path):
  config = make_config("configs/gan.py", *TINY, *GAN_TINY, "train.num_steps=4", "train.eval_every=2",
                       "train.eval_samples=64")
  summary = loop.train(config, tmp_path, progress=False, mesh=parallel.make_mesh(jax.devices()[:2]),
                       evaluator=make_training_evaluator)
  rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
  assert [r["step"] for r in rows] == [2, 4]
  # The EMA generator (standing BN statistics) and the raw one, both scored: they differ early in a run.
  assert all(set(r) == {"step", "split", "fd_classifier", "fd_classifier_raw"} for r in rows)
  assert all(np.isfinite(r["fd_classifier"]) and np.isfinite(r["fd_classifier_raw"]) for r in rows)
  assert rows[0]["fd_classifier"] != rows[0]["fd_classifier_raw"]
  assert rows[0]["fd_classifier"] != rows[1]["fd_classifier"]       # the weights moved between the two
  protocol = json.loads((tmp_path / "training_eval.json").read_text())
  assert protocol["num_samples"] == 64 and protocol["every_steps"] == 2 and protocol["params"] == "ema"
  assert protocol["reference"] == "mnist test split: all 64 images of the split, in its order"
  assert len(protocol["feature_network_sha256"]) == 64
  # The logged number is the final weights' score, reproduced from them with the same draws.
  run = loop.setup(config, parallel.make_mesh(jax.devices()[:2]))
  again = TrainingEval.create(run, config).measure(summary["state"].models)
  assert again["fd_classifier"] == pytest.approx(rows[1]["fd_classifier"], rel=1e-5)
  assert again["fd_classifier_raw"] == pytest.approx(rows[1]["fd_classifier_raw"], rel=1e-5)
  drawn = curves.plot_run_curves(read_metrics(tmp_path / "metrics.jsonl"), tmp_path / "curves", split="eval")
  assert set(drawn) == {"sample_quality"} and drawn["sample_quality"].stat().st_size > 0


def test_mixture_runs_log_mode_counts(make_config, tmp_path):
  config = make_config("configs/gan_toy.py:runlocal", "train.num_steps=3", "train.eval_every=3",
                       "train.eval_samples=500", "train.checkpoint_every=3", "train.sample_every=0")
  loop.train(config, tmp_path, progress=False, mesh=parallel.make_mesh(jax.devices()[:1]),
             evaluator=make_training_evaluator)
  rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "eval"]
  assert [r["step"] for r in rows] == [3]
  assert 0 <= rows[0]["modes_covered"] <= 8 and 0.0 <= rows[0]["high_quality_fraction"] <= 1.0
  assert 0.0 <= rows[0]["kl_to_uniform"] <= np.log(8) + 1e-9
  protocol = json.loads((tmp_path / "training_eval.json").read_text())
  assert protocol["high_quality"] == "within 3.0 std of the nearest mode"


def _resume_after_a_stop_at_3_equals_the_whole_run(config, mesh, whole, stopped):
  """The run stopped at step 3 has that step's train row and no eval row; resumed, its curve is the whole run's."""
  rows = read_metrics(stopped / "metrics.jsonl")
  assert [r["step"] for r in rows if r["split"] == "eval"] == []
  # The steps before the stop keep their train row (the checkpoint's step always has one).
  assert [(r["step"], r["averaged_over"]) for r in rows if r["split"] == "train"] == [(3, 3)]
  loop.train(config, stopped, progress=False, mesh=mesh, evaluator=make_training_evaluator)
  want = [r for r in read_metrics(whole / "metrics.jsonl") if r["split"] == "eval"]
  got = [r for r in read_metrics(stopped / "metrics.jsonl") if r["split"] == "eval"]
  assert [r["step"] for r in got] == [3, 6]
  for a, b in zip(got, want):
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-6) for k in a if k != "split")


def test_a_stop_at_an_evaluation_step_leaves_no_gap_in_the_curve(make_config, tmp_path):
  """A SIGTERM at an evaluation step saves the checkpoint but skips the evaluation (as does a crash between the
  two); the resumed run measures that checkpoint first, so the curve equals an uninterrupted run's."""
  args = ("configs/gan_toy.py:runlocal", "train.num_steps=6", "train.eval_every=3", "train.eval_samples=500",
          "train.checkpoint_every=3", "train.sample_every=0")
  mesh = parallel.make_mesh(jax.devices()[:1])
  loop.train(make_config(*args), tmp_path / "whole", progress=False, mesh=mesh, evaluator=make_training_evaluator)
  stopped = tmp_path / "stopped"
  loop.train(make_config(*args), stopped, progress=False, mesh=mesh, evaluator=make_training_evaluator,
             interrupt_at=3)
  _resume_after_a_stop_at_3_equals_the_whole_run(make_config(*args), mesh, tmp_path / "whole", stopped)
  # A rerun of the finished run adds nothing (the row of its last step is there).
  loop.train(make_config(*args), stopped, progress=False, mesh=mesh, evaluator=make_training_evaluator)
  assert len([r for r in read_metrics(stopped / "metrics.jsonl") if r["split"] == "eval"]) == 2


def test_a_sigterm_during_an_evaluation_abandons_it_and_the_resumed_curve_has_no_gap(make_config, tmp_path):
  """A real SIGTERM arriving while the step-3 evaluation runs: the evaluation is abandoned between batches (no
  row), step 3 is checkpointed although it is not a checkpoint step, the run stops; the resume measures step 3
  first, so the curve equals an uninterrupted run's."""
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers need the main thread")
  args = ("configs/gan_toy.py:runlocal", "train.num_steps=6", "train.eval_every=3", "train.eval_samples=500",
          "train.checkpoint_every=6", "train.sample_every=0")
  mesh = parallel.make_mesh(jax.devices()[:1])
  loop.train(make_config(*args), tmp_path / "whole", progress=False, mesh=mesh, evaluator=make_training_evaluator)
  sent = []

  def signalling_evaluator(run, config):
    evaluator = make_training_evaluator(run, config)
    measure = evaluator.measure

    def measure_after_a_sigterm(models, stop_requested=None):
      if not sent:   # the first evaluation of the loop (step 3)
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)   # handled by the loop's stop flag before the first batch
      return measure(models, stop_requested)
    evaluator.measure = measure_after_a_sigterm
    return evaluator

  stopped = tmp_path / "stopped"
  summary = loop.train(make_config(*args), stopped, progress=False, mesh=mesh, evaluator=signalling_evaluator)
  assert summary["stopped_by"] == "SIGTERM" and summary["step"] == 3
  assert sorted(p.name for p in (stopped / "checkpoints").iterdir() if p.name.isdigit()) == ["3"]
  _resume_after_a_stop_at_3_equals_the_whole_run(make_config(*args), mesh, tmp_path / "whole", stopped)


def test_data_without_a_classifier_is_a_note_not_a_crash(make_config, tmp_path, capsys):
  config = make_config("configs/gan.py", *TINY, "train.eval_every=10", f"eval.feature_net={tmp_path / 'none'}")
  run = types.SimpleNamespace(dataset=types.SimpleNamespace(name="mnist", image_shape=(28, 28, 1)))
  assert TrainingEval.create(run, config) is None
  out = capsys.readouterr().out
  assert "config.train.eval_every=10" in out and "cannot be measured during training" in out
  assert TrainingEval.create(run, make_config("configs/gan.py", *TINY, "train.eval_every=0")) is None


def test_eval_samples_below_two_is_refused_and_anomaly_models_skip_the_curve(make_config):
  with pytest.raises(ConfigError, match=r"config\.train\.eval_samples must be >= 2"):
    make_config("configs/gan.py", "train.eval_every=10", "train.eval_samples=1")
  from gen_jax.jobs import anomaly
  config = make_config("configs/vae.py")
  assert config.train.eval_every == 5000
  assert anomaly._class_config(config, 3, 10).train.eval_every == 0


def test_eval_samples_beyond_the_reference_split_are_clamped_with_a_note(make_config, capsys):
  config = make_config("configs/gan.py", *TINY, *GAN_TINY, "train.eval_every=10", "train.eval_samples=2000")
  te = TrainingEval.create(loop.setup(config, parallel.make_mesh(jax.devices()[:1])), config)
  assert te.num_samples == te.protocol["num_samples"] == 64               # TINY keeps 64 test images
  assert te.protocol["reference"] == "mnist test split: all 64 images of the split, in its order"
  assert "eval_samples=2000 exceeds the 64 images of the mnist test split" in capsys.readouterr().out
