"""Tests of the one-class anomaly protocol: AUROC, the train-class filter, anomaly scores, the end-to-end run."""
import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from gen_jax import config as config_lib
from gen_jax.data import load_dataset
from gen_jax.errors import ConfigError, DatasetError
from gen_jax.jobs import anomaly
from gen_jax.storage.lock import FolderLockedError
from gen_jax.eval.metrics.auroc import auroc
from gen_jax.eval.model_api import from_run
from gen_jax.train import loop
from tests.conftest import REPO_ROOT, TINY


def _eval_cli():
  """eval.py as a module (it is a script, not part of the package)."""
  spec = importlib.util.spec_from_file_location("gen_jax_eval_cli_anomaly", REPO_ROOT / "eval.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


GAN_TINY = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")


# ---------------------------------------------------------------- AUROC

def _pairwise_auroc(scores, is_anomaly) -> float:
  """Brute force: over every (anomaly, normal) pair count 1 if the anomaly scores higher, 1/2 on a tie."""
  pos, neg = scores[is_anomaly], scores[~is_anomaly]
  wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
  return float(wins) / (len(pos) * len(neg))


@pytest.mark.parametrize("n,levels", [(7, 3), (50, 5), (200, 1000)])
def test_auroc_matches_pairwise_brute_force_with_ties(n, levels):
  rng = np.random.default_rng(n)
  for _ in range(5):
    scores = rng.integers(0, levels, n).astype(np.float32)  # few levels: many ties
    is_anomaly = rng.random(n) < 0.3
    is_anomaly[:2] = (True, False)
    assert auroc(scores, is_anomaly) == pytest.approx(_pairwise_auroc(scores, is_anomaly), abs=1e-12)


def test_auroc_extremes_and_label_forms():
  scores = np.array([0.1, 0.2, 0.3, 0.9, 1.0])
  labels = np.array([0, 0, 0, 1, 1])
  assert auroc(scores, labels) == 1.0
  assert auroc(scores, labels.astype(bool)) == 1.0
  assert auroc(-scores, labels) == 0.0
  assert auroc(np.full(5, 3.0), labels) == 0.5


def test_auroc_rejects_one_class_bad_shapes_and_nan():
  with pytest.raises(ValueError, match="both anomalies and normal"):
    auroc(np.arange(4.0), np.zeros(4, bool))
  with pytest.raises(ValueError, match="both anomalies and normal"):
    auroc(np.arange(4.0), np.ones(4, bool))
  with pytest.raises(ValueError, match="4 scores but 3 labels"):
    auroc(np.arange(4.0), np.array([0, 1, 0]))
  with pytest.raises(ValueError, match="NaN"):
    auroc(np.array([0.0, np.nan, 1.0]), np.array([0, 1, 1]))
  with pytest.raises(ValueError, match="boolean"):
    auroc(np.arange(3.0), np.array([0, 2, 1]))


# ---------------------------------------------------------------- data.classes

def test_classes_filter_keeps_first_train_examples_of_those_classes_and_whole_test(make_config):
  full = load_dataset(make_config("configs/vae.py", "data.num_train=2500", "data.num_test=300").data)
  some = load_dataset(make_config("configs/vae.py", "data.classes=(3, 1)", "data.num_train=250",
                                  "data.num_test=300").data)
  keep = np.flatnonzero(np.isin(full.train.labels, (1, 3)))[:250]  # reference: numpy on the unfiltered prefix
  assert len(keep) == 250
  np.testing.assert_array_equal(some.train.labels, full.train.labels[keep])
  np.testing.assert_array_equal(some.train.images, full.train.images[keep])
  assert set(np.unique(some.train.labels)) == {1, 3}
  np.testing.assert_array_equal(some.test.images, full.test.images)
  np.testing.assert_array_equal(some.test.labels, full.test.labels)
  assert "train classes (1, 3)" in some.source
  one = load_dataset(make_config("configs/vae.py", "data.classes=7", "data.num_train=50", "data.num_test=10").data)
  np.testing.assert_array_equal(one.train.images, full.train.images[full.train.labels == 7][:50])


def test_bad_classes_are_refused_naming_the_key_and_range(make_config, tmp_path):
  for classes, bad in (("(10,)", "[10]"), ("(-1, 2)", "[-1]")):
    with pytest.raises(ConfigError, match=r"config\.data\.classes") as e:
      load_dataset(make_config("configs/vae.py", f"data.classes={classes}").data)
    assert f"class(es) {bad} are outside the valid range [0, 10)" in str(e.value)
  cfg = make_config("configs/vae.py").data
  with cfg.unlocked():
    cfg.classes = ("a",)
  with pytest.raises(ConfigError, match="tuple of class ids"):
    load_dataset(cfg)
  for name in ("ring8", "stacked_mnist"):
    cfg = make_config("configs/vae.py", "data.classes=(1,)").data
    with cfg.unlocked():
      cfg.name = name
    with pytest.raises(ConfigError, match=f"not supported for data.name='{name}'"):
      load_dataset(cfg)
  path = tmp_path / "nolabels.npz"
  np.savez(path, images=np.zeros((20, 8, 8, 1), np.uint8))
  cfg = ml_collections.ConfigDict(dict(name="npz", path=str(path), classes=(0,), num_train=0, num_test=0))
  with pytest.raises(DatasetError, match="needs a labelled dataset"):
    load_dataset(cfg)
  path = tmp_path / "labels.npz"
  np.savez(path, images=np.zeros((20, 8, 8, 1), np.uint8), labels=np.arange(20) % 2)
  cfg = ml_collections.ConfigDict(dict(name="npz", path=str(path), classes=(1,), num_train=0, num_test=0))
  assert set(load_dataset(cfg).train.labels) == {1}
  with cfg.unlocked():
    cfg.classes = (2,)
  with pytest.raises(ConfigError, match=r"outside the valid range \[0, 2\)"):
    load_dataset(cfg)


# ---------------------------------------------------------------- anomaly_scores

def test_anomaly_scores_of_a_vaegan_match_direct_calls(make_config):
  config = make_config("configs/vaegan.py", *TINY, *GAN_TINY)
  run = loop.setup(config)
  model = from_run(run, run.init_state().models)
  images = run.dataset.test.images[:40]  # batch 32: one full batch, one padded
  scores = anomaly.anomaly_scores(model, images, None, jax.random.key(0), batch_size=32)
  assert set(scores) == {"recon_error", "neg_discriminator"}
  for s in scores.values():
    assert s.shape == (40,) and np.all(np.isfinite(s))
  x = images[:32].astype(np.float32) / 255.0  # grey MNIST: the model input is the image itself
  recon = np.asarray(model.reconstruct(x))
  np.testing.assert_allclose(scores["recon_error"][:32], ((recon - x) ** 2).reshape(32, -1).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(scores["neg_discriminator"][:32], -np.asarray(model.discriminator(x)), rtol=1e-5)
  with pytest.raises(DatasetError, match="uint8 images"):
    anomaly.anomaly_scores(model, images.astype(np.float32), None, jax.random.key(0), batch_size=32)


# ---------------------------------------------------------------- end to end

def _base_workdir(make_config, tmp_path, spec, *overrides) -> pathlib.Path:
  """A workdir holding only a run's config.json: all the protocol reads from the source run."""
  config = make_config(spec, *TINY, *overrides)
  workdir = tmp_path / "run"
  workdir.mkdir()
  config_lib.save_config(config, workdir / "config.json")
  return workdir


def _spy_on_scores(monkeypatch) -> list:
  seen = []
  original = anomaly.anomaly_scores

  def spy(model, images, labels, *args, **kwargs):
    out = original(model, images, labels, *args, **kwargs)
    seen.append((len(images), np.unique(labels).tolist(), out))
    return out

  monkeypatch.setattr(anomaly, "anomaly_scores", spy)
  return seen


def _check_report(workdir: pathlib.Path, names: set, classes=("0", "1")) -> dict:
  report = json.loads((workdir / "anomaly" / "anomaly.json").read_text())
  assert list(report["per_class"]) == list(classes)
  for row in report["per_class"].values():
    assert set(row) == names and all(0.0 <= v <= 1.0 for v in row.values())
  for n in names:
    assert report["mean"][n] == pytest.approx(np.mean([report["per_class"][c][n] for c in classes]))
  proto = report["protocol"]
  assert proto["test"] == f"{proto['dataset']} test split, 64 images, anomaly = label != c"
  assert set(proto["scores"]) == names and proto["seed"] == 0
  table = (workdir / "anomaly" / "anomaly.md").read_text()
  assert all(f"| {c} |" in table for c in classes) and "| **mean** |" in table
  return report


def test_protocol_end_to_end_vae_learns_its_normal_class_and_does_not_retrain(make_config, tmp_path, monkeypatch):
  workdir = _base_workdir(make_config, tmp_path, "configs/vae.py")
  seen = _spy_on_scores(monkeypatch)
  report = anomaly.run_anomaly_protocol(workdir, classes=(0, 1), num_steps=10, progress=False)
  _check_report(workdir, {"recon_error", "neg_elbo"})
  assert report["protocol"]["num_steps"] == 10 and report["complete"]
  for (n, cond, scores), c in zip(seen, (0, 1)):
    assert n == 64 and cond == [c]  # the whole test split, conditioned on the normal class
    assert all(s.shape == (64,) and np.all(np.isfinite(s)) for s in scores.values())
  # Trained on zeros only, zeros reconstruct best. (Checked by hand: trained on all classes for the same 10
  # steps, the AUROC of class 0 is about 0.15, since zeros hold the most ink; untrained, 0.6 and 0.3.)
  assert report["per_class"]["0"]["recon_error"] > 0.9 and report["per_class"]["0"]["neg_elbo"] > 0.9
  ckpt = workdir / "anomaly" / "class_0" / "checkpoints"
  before = sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir())
  again = anomaly.run_anomaly_protocol(workdir, classes=(0,), num_steps=10, progress=False)
  assert sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir()) == before  # restored, not retrained
  assert again["per_class"]["0"] == report["per_class"]["0"]


def test_protocol_end_to_end_gan(make_config, tmp_path, monkeypatch):
  workdir = _base_workdir(make_config, tmp_path, "configs/gan.py", *GAN_TINY)
  seen = _spy_on_scores(monkeypatch)
  report = anomaly.run_anomaly_protocol(workdir, classes=(0, 1), num_steps=2, progress=False)
  _check_report(workdir, {"neg_discriminator"})
  assert [s["step"] for s in report["protocol"]["per_class_runs"].values()] == [2, 2]
  assert all(s.shape == (64,) and np.all(np.isfinite(s)) for _, _, out in seen for s in out.values())


def test_protocol_errors_are_clear(make_config, tmp_path, monkeypatch):
  workdir = _base_workdir(make_config, tmp_path, "configs/vae.py")
  with pytest.raises(ConfigError, match=r"\[0, 10\)"):
    anomaly.run_anomaly_protocol(workdir, classes=(10,), progress=False)
  with pytest.raises(ConfigError, match="config.json not found"):
    anomaly.run_anomaly_protocol(tmp_path / "nothing", progress=False)
  # The command line is eval.py's --anomaly (the one entry point): a bad --classes fails before any slow work.
  eval_cli = _eval_cli()
  monkeypatch.setattr(sys, "argv", ["eval.py", "--anomaly", f"--workdir={workdir}", "--classes=0,x"])
  with pytest.raises(ConfigError, match=r"--classes=0,x is not a list of class ids"):
    eval_cli.main()
  assert eval_cli.parse_classes("3, 1") == [3, 1]
  assert not hasattr(anomaly, "main")
  # A second protocol on the same workdir is refused at once, naming the holder (it would retrain the same class
  # folders and overwrite anomaly.json).
  hold = ("import sys, time; from gen_jax.storage.lock import FolderLock; FolderLock(sys.argv[1]).acquire(); "
          "print('locked', flush=True); time.sleep(60)")
  holder = subprocess.Popen([sys.executable, "-c", hold, str(workdir / "anomaly")], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(FolderLockedError, match=rf"anomaly is in use by pid {holder.pid}.*eval.py --anomaly"):
      anomaly.run_anomaly_protocol(workdir, classes=(0,), num_steps=1, progress=False)
  finally:
    holder.kill()
    holder.wait()
  assert not (workdir / "anomaly" / "class_0").exists()
