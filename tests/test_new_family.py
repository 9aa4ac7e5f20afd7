"""A model family added from outside the package: defined in this file alone, registered, trained with train.py's code
path, evaluated with eval.py's on the groups its capabilities allow (the rest skipped with a reason), and put in a
comparison report. No shared file is edited for it: that is the family protocol's promise (gen_jax/models/family.py).
"""
from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import optax
import pytest

from conftest import TINY
from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.eval.evaluate import evaluate_workdir
from gen_jax.eval.training_eval import make_training_evaluator
from gen_jax.models import registry
from gen_jax.models.family import Capabilities, ModelFamily
from gen_jax.models.state import ModelState
from gen_jax.report.build import build_report
from gen_jax.train import loop
from gen_jax.train.metrics_log import read_metrics


class TinyAutoencoder(ModelFamily):
  """A linear encoder and a sigmoid-linear decoder trained on pixel squared error: an encoder, no likelihood."""
  name = "tiny_ae"
  sampled_model = "ae"
  progress_metrics = ("loss",)

  @classmethod
  def add_defaults(cls, config):
    config.model.family, config.model.arch, config.model.latent_dim = "tiny_ae", "mlp", 8
    return config

  def __init__(self, config, dataset):
    self.image_shape = tuple(dataset.image_shape)
    self.latent_dim = int(config.model.latent_dim)
    self.tx = optax.adam(1e-2)

  @property
  def capabilities(self) -> Capabilities:
    return Capabilities(can_sample=True, has_encoder=True)

  def init_models(self, key, example_batch):
    dim = math.prod(self.image_shape)
    k_e, k_d = jax.random.split(key)
    params = {"encoder": {"w": jax.random.normal(k_e, (dim, self.latent_dim)) / jnp.sqrt(dim),
                          "b": jnp.zeros(self.latent_dim)},
              "decoder": {"w": jax.random.normal(k_d, (self.latent_dim, dim)) / jnp.sqrt(self.latent_dim),
                          "b": jnp.zeros(dim)}}
    return {"ae": ModelState.create(params, self.tx)}

  def _decode(self, params, z):
    return jax.nn.sigmoid(z @ params["decoder"]["w"] + params["decoder"]["b"]).reshape((-1,) + self.image_shape)

  def _encode(self, params, x):
    return x.reshape(x.shape[0], -1) @ params["encoder"]["w"] + params["encoder"]["b"]

  def update_models(self, models, batch, key, step):
    ae, x = models["ae"], batch["image"]
    loss_fn = lambda p: jnp.mean(jnp.square(self._decode(p, self._encode(p, x)) - x))  # noqa: E731
    loss, grads = jax.value_and_grad(loss_fn)(ae.params)
    return {"ae": ae.apply_gradients(grads, self.tx)}, {"loss": loss}

  def visualize(self, models, batch, key):
    labels = jnp.zeros((16,), jnp.int32)
    return {"samples": self.sample(models, key, 16, labels),
            "reconstructions": self.decode(models, self.encode(models, batch["image"][:16], labels)[0], labels)}

  def visualize_layout(self):
    return {"samples": 4, "reconstructions": 4}

  def decode(self, models, z, labels):
    return self._decode(models["ae"].eval_params(), z)

  def encode(self, models, x, labels):
    mean = self._encode(models["ae"].eval_params(), x)
    return mean, jnp.zeros_like(mean)


@pytest.fixture
def tiny_ae_registered(monkeypatch):
  monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))   # the registration ends with the test
  registry.register("tiny_ae", TinyAutoencoder)


def test_a_family_defined_in_a_test_trains_evaluates_and_reports(tiny_ae_registered, shared_data_dir,
                                                                 tfds_cache_dir, tmp_path):
  config = config_lib.default_config("tiny_ae")
  config_lib.apply_overrides(config, [f"data.data_dir={shared_data_dir}", f"data.tfds_dir={tfds_cache_dir}",
                                      "data.name=mnist", *TINY, "train.num_steps=20", "train.sample_every=20",
                                      "eval.suites=('likelihood', 'modes', 'cas')"])
  config_lib.validate_config(config)
  workdir = tmp_path / "tiny_ae"
  # train.py's code path, its during-training evaluator included.
  summary = loop.train(config, workdir, progress=False, mesh=parallel.make_mesh(jax.devices()[:1]),
                       evaluator=make_training_evaluator)
  assert summary["step"] == 20 and (workdir / "images" / "samples_0000020.png").exists()
  losses = [r["loss"] for r in read_metrics(workdir / "metrics.jsonl") if r["split"] == "train"]
  assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses       # it learns

  # eval.py's code path: the likelihood group measures what an encoder allows; the others say why they skip.
  report = evaluate_workdir(workdir, progress=False)
  assert report["family"] == "tiny_ae" and report["capabilities"] == Capabilities(has_encoder=True).to_json()
  assert set(report["metrics"]) == {"recon_mse"} and 0.0 < report["metrics"]["recon_mse"] < losses[0]
  protocol = report["protocol"]
  assert "known modes" in protocol["modes"]["skipped"] and "not class-conditional" in protocol["cas"]["skipped"]

  # The comparison report reads the family's capabilities from metrics.json (no family name is known to it).
  paths = build_report([workdir], tmp_path / "report", evaluate_missing=False, progress=False)
  page = paths["index_html"].read_text(encoding="utf-8")
  assert "tiny_ae" in page and "recon_mse" in page and "mlp" in page
  saved = json.loads(paths["report_json"].read_text())
  assert "tiny_ae" in json.dumps(saved)


def test_an_unknown_family_is_a_one_line_error_listing_the_registered_ones(tiny_ae_registered):
  from gen_jax.errors import ConfigError
  with pytest.raises(ConfigError) as e:
    registry.family_class("tiny_vae")
  message = str(e.value)
  assert "\n" not in message and "'tiny_vae'" in message
  assert all(name in message for name in ("vae", "gan", "vaegan", "tiny_ae"))
  with pytest.raises(TypeError, match="ModelFamily subclass"):
    registry.register("not_a_family", dict)


def test_an_operation_a_family_lacks_says_which_capability_to_check(tiny_ae_registered):
  family = TinyAutoencoder.__new__(TinyAutoencoder)
  with pytest.raises(NotImplementedError, match=r"capabilities\.has_discriminator"):
    family.discriminate({}, jnp.zeros((1, 2)), jnp.zeros((1,), jnp.int32))
  with pytest.raises(NotImplementedError, match=r"capabilities\.has_likelihood"):
    family.elbo({}, jnp.zeros((1, 2)), jnp.zeros((1,), jnp.int32), jax.random.key(0))
