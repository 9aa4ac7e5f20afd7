"""The committed study files: their plans and budgets, the shared loader of `path.py[:arg]` files, the MNIST ledger
still matching its study file, and a study that stops before training when its feature classifier is missing."""
from __future__ import annotations

import json
import pathlib
import sys

import pytest

from gen_jax import config as config_lib
from gen_jax.errors import ConfigError
from gen_jax.jobs import study as study_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _seen(run) -> int:
  return int(run.config.train.num_steps) * study_lib.images_per_step(run.config)


def _check_images_rule(study, runs) -> None:
  assert study.budget.rule == "images"
  for r in runs:
    per_step = study_lib.images_per_step(r.config)
    assert study.budget.images <= _seen(r) < study.budget.images + per_step, r.key


@pytest.mark.parametrize("variant", ["cpu", "full"])
def test_cifar10_study_plans_every_family_at_equal_images(tmp_path, variant):
  study = study_lib.load_study(str(REPO / f"studies/cifar10.py:{variant}"))
  runs = study_lib.plan(study, tmp_path)
  by_entry = {}
  for r in runs:
    by_entry.setdefault(r.entry, []).append(r)
    assert r.config.data.name == "cifar10" and r.config.seed == r.seed
  expected = {"conv_vae", "dcgan", "sngan", "wgan_gp", "vaegan"} | ({"cdcgan"} if variant == "full" else set())
  assert set(by_entry) == expected and all(sorted(r.seed for r in rs) == [0, 1, 2] for rs in by_entry.values())
  assert len(runs) == 3 * len(expected)
  _check_images_rule(study, runs)
  one = {name: rs[0].config for name, rs in by_entry.items()}
  # The recipes: discretized logistic VAE; SNGAN (ResNet, SN, hinge, n_critic 5, Adam 2e-4 (0, 0.9)); WGAN-GP.
  assert one["conv_vae"].model.likelihood == "logistic" and one["conv_vae"].model.arch == "conv"
  sn = one["sngan"]
  assert (sn.model.arch, sn.model.spectral_norm, sn.gan.loss, sn.gan.n_critic) == ("resnet", True, "hinge", 5)
  assert (sn.optimizer.learning_rate, sn.optimizer.b1, sn.optimizer.b2) == (2e-4, 0.0, 0.9)
  assert one["wgan_gp"].gan.gp_weight == 10.0 and one["wgan_gp"].gan.n_critic == 5
  assert one["dcgan"].gan.loss == "nonsaturating" and one["dcgan"].train.ema_decay > 0
  # n_critic 5 draws five batches a step: a fifth of DCGAN's generator steps at equal images.
  assert int(sn.train.num_steps) * 5 == int(one["dcgan"].train.num_steps)
  # The training-time curve at the same images seen for every entry.
  periods = {n: int(cfg.train.eval_every) * study_lib.images_per_step(cfg) for n, cfg in one.items()}
  assert len(set(periods.values())) == 1, periods
  # Checkpoints at equal images too, several per run: a killed 640-step SNGAN run keeps most of its work.
  saves = {n: int(cfg.train.checkpoint_every) * study_lib.images_per_step(cfg) for n, cfg in one.items()}
  assert len(set(saves.values())) == 1, saves
  assert all(int(cfg.train.num_steps) >= 4 * int(cfg.train.checkpoint_every) for cfg in one.values())
  assert sn.model.d_layout == "sngan" and sn.optimizer.schedule == sn.d_optimizer.schedule == "linear"
  gans = [cfg for n, cfg in one.items() if cfg.model.family in ("gan", "vaegan")]
  if variant == "full":
    assert all(int(cfg.train.num_steps) >= 50_000 for cfg in gans)
    assert (sn.model.g_width, sn.model.d_width) == (256, 128)
    assert one["conv_vae"].eval.num_importance_samples >= 1000 and "cas" in one["dcgan"].eval.suites
  else:
    assert all((cfg.model.g_width, cfg.model.d_width) == (32, 32) for cfg in gans)
    assert (one["conv_vae"].eval.num_importance_samples, one["conv_vae"].eval.num_examples) == (100, 2000)


def test_grey_study_files_share_one_builder_and_keep_their_budgets(tmp_path):
  for name in ("mnist", "fashion_mnist"):
    cpu, full = (study_lib.load_study(str(REPO / f"studies/{name}.py:{v}")) for v in ("cpu", "full"))
    assert study_lib.load_study(str(REPO / f"studies/{name}.py")).to_json() == cpu.to_json().replace(
        '"variant": "cpu"', '"variant": ""')
    assert (cpu.budget.images, full.budget.images) == (320_000, 6_400_000)
    assert cpu.datasets == (name,) and [e.name for e in cpu.entries] == ["conv_vae", "cvae", "dcgan", "hinge_sn",
                                                                          "vaegan"]
    with pytest.raises(ConfigError, match=rf"studies/{name}.py: unknown variant 'gpu'; use cpu or full"):
      study_lib.load_study(str(REPO / f"studies/{name}.py:gpu"))


def test_committed_mnist_ledger_records_are_still_finished_runs():
  """The MNIST study's recorded runs must match what studies/mnist.py plans now: a changed study file or config
  default would make the running study refuse its own records ('made with another config')."""
  ledger = REPO / "results" / "study_mnist"
  records = sorted((ledger / study_lib.LEDGER).glob(f"*/{study_lib.RECORD}"))
  if not records:
    pytest.skip("no MNIST ledger records in this checkout")
  study = study_lib.load_study(str(REPO / "studies/mnist.py"))
  runs = {r.key: r for r in study_lib.plan(study, "runs/studies")}
  for path in records:
    key = path.parent.name
    assert key in runs, f"{key} is recorded but no longer planned"
    assert study_lib.finished(runs[key], ledger), key


# ----------------------------------------------------------------------------------------------------- the loader
def test_one_loader_for_config_and_study_files_with_their_own_messages(tmp_path):
  path_before = list(sys.path)
  study_lib.load_study(str(REPO / "studies/tiny.py"))
  assert sys.path == path_before   # study files import studies._common without a sys.path entry
  with pytest.raises(ConfigError, match=r"study file 'studies/none.py' does not exist; pass one of: .*studies/cifar10"):
    study_lib.load_study("studies/none.py")
  with pytest.raises(ConfigError, match=r"config file 'configs/none.py' does not exist; .*available: .*gan.py"):
    config_lib.load_config_file("configs/none.py")
  empty = tmp_path / "empty.py"
  empty.write_text("X = 1\n")
  with pytest.raises(ConfigError, match=r"study file .*empty.py has no get_config\(variant\) function"):
    study_lib.load_study(str(empty))
  with pytest.raises(ConfigError, match=r"config file .*empty.py has no get_config\(\) function"):
    config_lib.load_config_file(str(empty))
  wrong = tmp_path / "wrong.py"
  wrong.write_text("def get_config(arg=''):\n  if arg:\n    raise ValueError(f'wrong.py: no variant {arg}')\n"
                   "  return {}\n")
  with pytest.raises(ConfigError, match="wrong.py: no variant x"):
    study_lib.load_study(f"{wrong}:x")
  with pytest.raises(ConfigError, match="must return an ml_collections.ConfigDict, got dict"):
    config_lib.load_config_file(str(wrong))


# ------------------------------------------------------------------------------------------ missing classifier
def test_study_stops_before_training_without_its_feature_classifier(tmp_path, monkeypatch):
  from gen_jax.eval.features import feature_net as feature_net_lib
  monkeypatch.setattr(feature_net_lib, "CLASSIFIERS_DIR", tmp_path / "classifiers")
  study = study_lib.load_study(str(REPO / "studies/cifar10.py"))

  def no_training(config, workdir):
    raise AssertionError("trained although the classifier is missing")

  with pytest.raises(ConfigError, match=r"feature classifier for cifar10 \(samples, latent, the training-time curve\)"
                                        r".*`python -m gen_jax\.eval\.train_feature_net --dataset=cifar10` "
                                        r"\(about two hours"):
    study_lib.run_study(study, tmp_path / "out", tmp_path / "runs", progress=False, train_fn=no_training)
  assert not (tmp_path / "runs").exists() and not (tmp_path / "out" / "ledger").exists()
  # The study's data.data_dir, when set, is in the command (no placeholder to fill in).
  runs = study_lib.plan(study, tmp_path / "runs", only=["dcgan"], seeds=[0],
                        extra_overrides=[f"data.data_dir={tmp_path}"])
  with pytest.raises(ConfigError, match=rf"--dataset=cifar10 --data_dir={tmp_path}` "):
    study_lib.check_feature_nets(runs)
  # A configured folder without a classifier is named as such; once a classifier is there, the check passes.
  runs = study_lib.plan(study, tmp_path / "runs", only=["dcgan"], seeds=[0],
                        extra_overrides=[f"eval.feature_net={tmp_path / 'mine'}"])
  with pytest.raises(ConfigError, match=r"mine has no classifier.json.*--out=.*mine"):
    study_lib.check_feature_nets(runs)
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / feature_net_lib.META_FILE).write_text(json.dumps({}))
  study_lib.check_feature_nets(runs)
  runs = study_lib.plan(study, tmp_path / "runs", only=["dcgan"], seeds=[0],
                        extra_overrides=["eval.suites=('imputation',)", "train.eval_every=0"])
  study_lib.check_feature_nets(runs)   # nothing asks for the classifier
