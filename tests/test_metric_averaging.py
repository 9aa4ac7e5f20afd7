"""Logged training metrics are means over the logging window, summed on device (train/step.py, train/loop.py)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

from conftest import TINY
from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.models import registry
from gen_jax.models.family import Capabilities, ModelFamily
from gen_jax.models.state import ModelState
from gen_jax.train import loop
from gen_jax.train.metrics_log import read_metrics


class StepCounter(ModelFamily):
  """A family whose metric 'step_value' is the number of updates done before the step (0, 1, 2, ...)."""
  name = "step_counter"
  sampled_model = "m"
  progress_metrics = ("step_value",)

  @classmethod
  def add_defaults(cls, config):
    config.model.family, config.model.arch, config.model.latent_dim = "step_counter", "mlp", 2
    return config

  def __init__(self, config, dataset):
    self.latent_dim = 2
    self.image_shape = tuple(dataset.image_shape)
    self.tx = optax.sgd(0.0)

  @property
  def capabilities(self) -> Capabilities:
    return Capabilities()

  def init_models(self, key, example_batch):
    return {"m": ModelState.create({"w": jnp.zeros((1,))}, self.tx)}

  def update_models(self, models, batch, key, step):
    value = step.astype(jnp.float32)
    return models, {"step_value": value, "square": value * value}

  def decode(self, models, z, labels):
    return jnp.zeros((z.shape[0],) + self.image_shape)

  def visualize(self, models, batch, key):
    return {"samples": jnp.zeros((4,) + self.image_shape)}

  def visualize_layout(self):
    return {"samples": 2}


@pytest.fixture
def step_counter_config(monkeypatch, shared_data_dir, tfds_cache_dir):
  monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
  registry.register("step_counter", StepCounter)

  def make(*overrides):
    config = config_lib.default_config("step_counter")
    config_lib.apply_overrides(config, [f"data.data_dir={shared_data_dir}", f"data.tfds_dir={tfds_cache_dir}",
                                        "data.name=mnist", *TINY, *overrides])
    return config_lib.validate_config(config)
  return make


def _window_means(rows_steps, fn):
  """{logged step: (mean of fn(t) over the updates t of its window, window length)}."""
  out, previous = {}, 0
  for s in rows_steps:
    values = [fn(t) for t in range(previous, s)]
    out[s] = (sum(values) / len(values), len(values))
    previous = s
  return out


def test_each_logged_value_is_the_mean_over_the_steps_since_the_previous_row(step_counter_config, tmp_path):
  # Rows at 4 (log_every), 5 (checkpoint), 8, 10 (last); three steps per call wherever they fit.
  config = step_counter_config("train.num_steps=10", "train.log_every=4", "train.checkpoint_every=5",
                               "train.steps_per_dispatch=3")
  loop.train(config, tmp_path / "run", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
  assert [r["step"] for r in rows] == [4, 5, 8, 10]
  means = _window_means([4, 5, 8, 10], float)
  squares = _window_means([4, 5, 8, 10], lambda t: float(t * t))
  for r in rows:
    assert r["step_value"] == pytest.approx(means[r["step"]][0]), r        # e.g. step 4: (0+1+2+3)/4 = 1.5
    assert r["square"] == pytest.approx(squares[r["step"]][0]), r
    assert r["averaged_over"] == means[r["step"]][1]
  assert [r["averaged_over"] for r in rows] == [4, 1, 3, 2]


def test_a_resumed_run_starts_a_new_window_at_its_checkpoint(step_counter_config, tmp_path):
  config = step_counter_config("train.num_steps=10", "train.log_every=4", "train.checkpoint_every=5")
  part = loop.train(config, tmp_path / "run", progress=False, interrupt_at=6,
                    mesh=parallel.make_mesh(jax.devices()[:1]))
  assert part["step"] == 6 and part["stopped_by"]
  loop.train(config, tmp_path / "run", progress=False, mesh=parallel.make_mesh(jax.devices()[:1]))
  rows = {r["step"]: r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"}
  assert sorted(rows) == [4, 5, 6, 8, 10]
  # 6 was the stop's row (update 5 alone); after resuming from 6 the window is updates 6, 7.
  assert rows[6]["step_value"] == 5.0 and rows[6]["averaged_over"] == 1
  assert rows[8]["step_value"] == pytest.approx(6.5) and rows[8]["averaged_over"] == 2
  assert rows[10]["step_value"] == pytest.approx(8.5) and rows[10]["averaged_over"] == 2
