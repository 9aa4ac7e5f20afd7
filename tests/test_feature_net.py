"""The feature classifiers (gen_jax/eval/features/feature_net.py, train_feature_net.py: the grey-data CNN and the
colour-data ResNet with its resumable recipe) and the classification accuracy score.

Training runs on a small real MNIST slice with a narrow network so the file stays within its time budget; the
full-size network and the stored classifiers/ are trained by the command (see README / train_feature_net.py).
"""
from __future__ import annotations

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from gen_jax.errors import CheckpointError, ConfigError, GenJaxError
from gen_jax.eval.groups import augmentation
from gen_jax.eval.features import feature_net as fn_lib
from gen_jax.eval import train_feature_net as tfn

# A failed orbax restore leaves reader coroutines that are garbage-collected later, during whichever test runs then.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

SMALL = dict(widths=(8, 16), feature_dim=32)
N_TRAIN = 2000


@pytest.fixture(scope="module")
def mnist(make_config):
  from gen_jax.data import load_dataset
  config = make_config("configs/vae.py:grey", "data.num_train=3000", "data.num_test=500")
  return load_dataset(config.data)


@pytest.fixture(scope="module")
def trained(mnist):
  params, history = tfn.train_classifier(
      mnist.train.images[:N_TRAIN], mnist.train.labels[:N_TRAIN], 10, num_steps=150, batch_size=32,
      learning_rate=3e-3, seed=0, eval_images=mnist.test.images, eval_labels=mnist.test.labels, log_every=50, **SMALL)
  return params, history


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
  params, history = trained
  out = tmp_path_factory.mktemp("clf") / "mnist"
  record = fn_lib.save_feature_net(out, params, history["architecture"],
                                   {"dataset": "mnist", "test_accuracy": history["eval_accuracy"], "seed": 0})
  return out, record


def test_training_on_a_small_slice_is_far_above_chance(trained):
  _, history = trained
  # 10 classes: chance is 0.1; 150 steps of batch 32 on 2000 images reach ~0.9 on 500 held-out test images.
  assert history["eval_accuracy"] > 0.8, history
  assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
  assert history["steps"] == [50, 100, 150]


def test_accuracy_helper_matches_a_numpy_argmax(trained, mnist):
  params, history = trained
  arch = history["architecture"]
  x = mnist.test.images[:37]
  _, logits = arch.module().apply({"params": params}, x.astype(np.float32) / 255.0)
  expected = float(np.mean(np.argmax(np.asarray(logits), -1) == mnist.test.labels[:37]))
  assert tfn.accuracy(params, arch, x, mnist.test.labels[:37], batch_size=16) == pytest.approx(expected, abs=1e-6)


def test_save_load_round_trip_gives_identical_outputs_and_hash(trained, saved, mnist):
  params, history = trained
  out, record = saved
  net = fn_lib.load_feature_net(out, dataset="stacked_mnist")  # aliases to mnist
  assert net.sha256 == record["sha256"] == fn_lib.params_sha256(params)
  assert (net.dataset, net.num_classes, net.image_shape) == ("mnist", 10, (28, 28, 1))
  assert net.test_accuracy == pytest.approx(history["eval_accuracy"])
  x = mnist.test.images[:45].astype(np.float32) / 255.0
  feats, logits = history["architecture"].module().apply({"params": params}, x)
  np.testing.assert_array_equal(net.logits(x, batch_size=16), np.asarray(logits))
  np.testing.assert_array_equal(net.features(x, batch_size=16), np.asarray(feats))
  assert net.features(x).shape == (45, 32)
  probs = net.probs(x)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(net.predict(x), np.argmax(np.asarray(logits), -1))
  assert net.describe()["feature_net_sha256"] == net.sha256


def test_hash_is_canonical_and_changes_with_any_weight(trained):
  params, _ = trained
  host = jax.device_get(params)
  base = fn_lib.params_sha256(host)
  reordered = {k: host[k] for k in sorted(host, reverse=True)}  # insertion order must not matter
  assert fn_lib.params_sha256(reordered) == base
  changed = jax.tree.map(np.array, host)
  kernel = changed["features"]["kernel"]
  kernel[3, 5] = np.nextafter(kernel[3, 5], np.float32(np.inf))  # one ulp of one weight
  assert fn_lib.params_sha256(changed) != base


def test_wrong_image_shape_is_a_clear_error(saved):
  net = fn_lib.load_feature_net(saved[0])
  with pytest.raises(GenJaxError, match=r"\(28, 28, 1\)"):
    net.features(np.zeros((2, 28, 28, 3), np.float32))


def _copy(saved, tmp_path) -> pathlib.Path:
  dst = tmp_path / "mnist"
  shutil.copytree(saved[0], dst)
  return dst


def test_corrupt_parameter_files_raise_checkpoint_error(saved, tmp_path):
  d = _copy(saved, tmp_path)
  data_files = [p for p in (d / "params").rglob("*") if p.is_file() and p.parent.name == "d"]
  assert data_files, sorted((d / "params").rglob("*"))
  rng = np.random.default_rng(0)
  for p in data_files:
    p.write_bytes(rng.integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())
  with pytest.raises(CheckpointError, match=r"retrain it with `python -m gen_jax\.eval\.train_feature_net .*"
                                            r" --overwrite`"):
    fn_lib.load_feature_net(d)   # the folder holds a classifier: the trainer refuses it without --overwrite


def test_deleted_parameters_raise_checkpoint_error(saved, tmp_path):
  d = _copy(saved, tmp_path)
  shutil.rmtree(d / "params")
  with pytest.raises(CheckpointError, match="cannot be read"):
    fn_lib.load_feature_net(d)


def test_recorded_hash_mismatch_and_bad_json_raise_checkpoint_error(saved, tmp_path):
  d = _copy(saved, tmp_path)
  meta = json.loads((d / fn_lib.META_FILE).read_text())
  meta["sha256"] = "0" * 64
  (d / fn_lib.META_FILE).write_text(json.dumps(meta))
  with pytest.raises(CheckpointError, match="altered"):
    fn_lib.load_feature_net(d)
  (d / fn_lib.META_FILE).write_text("{not json")
  with pytest.raises(CheckpointError, match="unreadable"):
    fn_lib.load_feature_net(d)


def test_architecture_mismatch_and_wrong_dataset_raise_checkpoint_error(saved, tmp_path):
  with pytest.raises(CheckpointError, match="fashion_mnist"):
    fn_lib.load_feature_net(saved[0], dataset="fashion_mnist")
  d = _copy(saved, tmp_path)
  meta = json.loads((d / fn_lib.META_FILE).read_text())
  meta["architecture"]["widths"] = [8, 24]
  (d / fn_lib.META_FILE).write_text(json.dumps(meta))
  with pytest.raises(CheckpointError, match="do not match"):
    fn_lib.load_feature_net(d)


def test_missing_folder_names_the_training_command(tmp_path):
  with pytest.raises(GenJaxError, match=r"python -m gen_jax\.eval\.train_feature_net --dataset=fashion_mnist"):
    fn_lib.load_feature_net(tmp_path / "fashion_mnist")
  with pytest.raises(GenJaxError, match=r"--dataset=cifar10 --data_dir=/my/data --out="):   # reads the run's data
    fn_lib.load_feature_net(tmp_path / "cifar10", data_dir="/my/data")
  assert fn_lib.default_feature_net_dir("binarized_mnist") == fn_lib.REPO_ROOT / "classifiers" / "mnist"
  assert fn_lib.default_feature_net_dir("stacked_mnist").name == "mnist"
  assert fn_lib.default_feature_net_dir("fashion_mnist").name == "fashion_mnist"


def _npz(tmp_path, mnist) -> pathlib.Path:
  path = tmp_path / "tiny.npz"
  np.savez(path, x_train=mnist.train.images[:200, :, :, 0], y_train=mnist.train.labels[:200],
           x_test=mnist.test.images[:50, :, :, 0], y_test=mnist.test.labels[:50])
  return path


def test_command_refuses_to_save_below_target_then_saves_when_allowed(tmp_path, mnist, monkeypatch):
  monkeypatch.setitem(tfn.TARGETS, "npz", 99.9)
  data = _npz(tmp_path, mnist)
  out = tmp_path / "clf"
  args = ["--dataset=npz", f"--data_path={data}", f"--out={out}", "--steps=3", "--batch_size=8"]
  with pytest.raises(GenJaxError, match="below the target 99.9"):
    tfn.main(args)
  assert not out.exists()
  assert tfn.main(args + ["--allow_below_target"]) == 0
  net = fn_lib.load_feature_net(out)
  assert net.dataset == "npz" and net.meta["train_steps"] == 3 and "--allow_below_target" in net.meta["command"]
  assert net.arch == fn_lib.Architecture()  # the command trains the default feature network


def test_command_refuses_an_existing_classifier_before_training_and_overwrite_replaces_it(saved, tmp_path, mnist,
                                                                                         monkeypatch):
  d = _copy(saved, tmp_path)
  files = lambda: {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}  # noqa: E731
  before = files()
  data = _npz(tmp_path, mnist)
  args = ["--dataset=npz", f"--data_path={data}", f"--out={d}", "--steps=3", "--batch_size=8"]

  def must_not_run(*a, **k):
    raise AssertionError("the command loaded data or trained although --out holds a classifier")

  with monkeypatch.context() as m:
    m.setattr(tfn, "_load", must_not_run)
    m.setattr(tfn, "train_classifier", must_not_run)
    with pytest.raises(ConfigError) as refused:
      tfn.main(args)
  msg = str(refused.value)
  assert "\n" not in msg and str(d.resolve()) in msg and saved[1]["sha256"][:12] in msg
  assert f"{100 * saved[1]['test_accuracy']:.2f}%" in msg
  assert "--out=<another folder>" in msg and "--overwrite to replace it" in msg
  assert files() == before  # the folder is untouched
  assert tfn.main(args + ["--overwrite"]) == 0
  net = fn_lib.load_feature_net(d)
  assert net.dataset == "npz" and net.meta["train_steps"] == 3 and "--overwrite" in net.meta["command"]
  assert net.sha256 != saved[1]["sha256"] and files() != before
  (d / fn_lib.META_FILE).write_text("{")  # a damaged classifier folder is still a classifier folder
  with pytest.raises(ConfigError, match=r"unreadable.*--overwrite to replace it"):
    tfn.main(args)


# --- classification accuracy score -------------------------------------------------------------------------

class RealImageModel:
  """A stand-in 'conditional generator' whose samples are real train images (of the asked class, or not)."""

  def __init__(self, dataset, shuffle_labels: bool):
    self.conditional, self.num_classes, self.data_shape = True, 10, (28, 28, 1)
    self.params_kind = "test"
    pool = slice(600, 3000)  # disjoint from the balanced real subset (the first ~50 of each class)
    self.images = dataset.train.images[pool].astype(np.float32) / 255.0
    self.labels = dataset.train.labels[pool]
    self.shuffle = shuffle_labels

  def sample(self, key, n, labels):
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    labels = np.asarray(labels)
    if self.shuffle:
      return self.images[rng.integers(0, len(self.images), n)]
    return np.stack([self.images[rng.choice(np.flatnonzero(self.labels == c))] for c in labels])


def _cas(model, mnist):
  return augmentation.classification_accuracy_score(
      model, mnist, jax.random.key(1), num_samples=500, real_subset=500, num_steps=120, batch_size=32,
      learning_rate=3e-3, sample_batch_size=100, include_full_real=False, **SMALL)


def test_cas_of_real_images_matches_real_training_and_shuffled_labels_are_at_chance(mnist):
  good = _cas(RealImageModel(mnist, shuffle_labels=False), mnist)
  m = good["metrics"]
  # Samples that are real images of the asked class are real training data of the same size: same accuracy.
  assert m["real_subset_accuracy"] > 0.7, m
  assert abs(m["cas_accuracy"] - m["real_subset_accuracy"]) < 0.08, m
  assert m["real_subset_plus_generated_accuracy"] > 0.7, m
  assert good["protocol"]["num_samples"] == 500 and good["protocol"]["test_examples"] == 500
  bad = _cas(RealImageModel(mnist, shuffle_labels=True), mnist)["metrics"]
  assert bad["cas_accuracy"] < 0.25, bad  # labels carry no information: chance is 0.1
  assert bad["real_subset_accuracy"] == pytest.approx(m["real_subset_accuracy"])  # same seed, same real data


def test_cas_labels_are_balanced_and_unconditional_models_are_skipped(mnist):
  assert np.bincount(augmentation.generated_labels(1000, 10)).tolist() == [100] * 10
  idx = augmentation.balanced_subset(mnist.train.labels, 95, 10)
  assert sorted(np.bincount(mnist.train.labels[idx], minlength=10).tolist()) == [9] * 5 + [10] * 5
  assert len(set(idx)) == 95 and np.array_equal(idx, augmentation.balanced_subset(mnist.train.labels, 95, 10))
  assert not np.array_equal(idx, augmentation.balanced_subset(mnist.train.labels, 95, 10, seed=1))
  with pytest.raises(ValueError, match="cas_real_subset"):
    augmentation.balanced_subset(mnist.train.labels[:30], 100, 10)

  class Unconditional:
    conditional, num_classes, data_shape = False, 10, (28, 28, 1)
  out = augmentation.classification_accuracy_score(Unconditional(), mnist, jax.random.key(0), num_samples=10,
                                                   real_subset=10, num_steps=1, batch_size=4)
  assert "conditional" in out["skipped"]


# --- the colour-data network (FeatureResNet) and its resumable recipe ----------------------------------------

# The committed classifiers (classifiers/README.md): the resnet kind must leave their architecture and hash alone.
COMMITTED_SHA256 = {
    "mnist": "6901d83c0ce01972693d314e7a936787623a69b124e00a9246c09a2b8d176cbc",
    "fashion_mnist": "7542099fb6a30f7a4714a295638d1d81ac0f3c3854aadac2e373eefdcbf5868a",
    "cifar10": "c016d66f5194fdbb06af6babbeddd606f67a1a9b091507451e701e8d48a3e42b",
}
TINY_WIDTHS = (4, 8, 8, 16)


def _colour_data(n: int, seed: int = 0, size: int = 16, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
  """uint8 colour images whose class is a colour (brighter channel) plus a stripe orientation, with noise."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % classes
  x = rng.uniform(0, 90, (n, size, size, 3))
  x[np.arange(n), :, :, labels % 3] += 110
  stripes = (np.arange(size) // 2 % 2 == 0)
  x[labels >= 3] += 50 * stripes[None, :, None, None]
  return np.clip(x, 0, 255).astype(np.uint8), labels.astype(np.int32)


def test_committed_classifiers_load_unchanged_with_their_recorded_sha256():
  committed = sorted(d.name for d in fn_lib.CLASSIFIERS_DIR.iterdir() if (d / fn_lib.META_FILE).is_file())
  assert committed == sorted(COMMITTED_SHA256), "list every committed classifier's sha256 here"
  for name, sha in COMMITTED_SHA256.items():
    net = fn_lib.load_feature_net(fn_lib.CLASSIFIERS_DIR / name, dataset=name)
    record = json.loads((fn_lib.CLASSIFIERS_DIR / name / fn_lib.META_FILE).read_text())
    assert net.sha256 == sha and net.arch.to_json() == record["architecture"]
    assert 100 * net.test_accuracy >= tfn.TARGETS[name] and record["test_examples"] == 10000
    if name in fn_lib.RESNET_DATASETS:   # the residual net, read out flip-averaged (its accuracy is that read-out's)
      assert net.arch.kind == "resnet" and net.flip_average and net.feature_dim == net.arch.widths[-1]
    else:                                # the cnn JSON gained no field
      assert net.arch.kind == "cnn" and not net.flip_average and net.feature_dim == 128
      assert "flip_average" not in record["architecture"]


def test_resnet_builds_for_32x32_colour_with_256_features_in_inference_mode():
  arch = fn_lib.resnet_architecture((32, 32, 3), 10)
  assert arch.feature_dim == 256 and arch.kind == "resnet"
  assert fn_lib.Architecture.from_json(arch.to_json()) == arch
  state = fn_lib.init_params(arch, jax.random.key(0))
  assert set(state) == {"params", "batch_stats"}
  x = np.random.default_rng(0).uniform(size=(5, 32, 32, 3)).astype(np.float32)
  feats, logits = fn_lib.apply_net(arch.module(), state, x)
  assert feats.shape == (5, 256) and logits.shape == (5, 10)
  # Batch norm uses the running statistics: an image's features do not depend on the rest of its batch.
  alone, _ = fn_lib.apply_net(arch.module(), state, x[:1])
  np.testing.assert_allclose(np.asarray(alone)[0], np.asarray(feats)[0], rtol=1e-5, atol=1e-5)
  with pytest.raises(fn_lib.ConfigError, match="divisible by 8"):
    fn_lib.resnet_architecture((28, 28, 3))
  with pytest.raises(fn_lib.ConfigError, match="4 widths"):
    fn_lib.Architecture(widths=(8, 16), feature_dim=16, image_shape=(32, 32, 3), kind="resnet")


def test_flip_averaged_readout_is_the_mean_over_the_mirror_pair_and_is_hashed_and_recorded(tmp_path):
  arch = fn_lib.resnet_architecture((16, 16, 3), 4, TINY_WIDTHS)
  flip = fn_lib.Architecture(**{**arch.__dict__, "flip_average": True})
  state = fn_lib.init_params(arch, jax.random.key(0))
  x = np.random.default_rng(0).uniform(size=(6, 16, 16, 3)).astype(np.float32)
  f1, l1 = fn_lib.apply_net(arch.module(), state, x)
  f2, l2 = fn_lib.apply_net(arch.module(), state, x[:, :, ::-1])
  fa, la = fn_lib.apply_net(arch.module(), state, x, True)
  np.testing.assert_allclose(np.asarray(fa), (np.asarray(f1) + np.asarray(f2)) / 2, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(la), (np.asarray(l1) + np.asarray(l2)) / 2, rtol=1e-5, atol=1e-6)
  assert not np.allclose(np.asarray(f1), np.asarray(f2), atol=1e-4)  # the mirror pair differs: the mean is a choice
  fm, _ = fn_lib.apply_net(arch.module(), state, x[:, :, ::-1], True)
  np.testing.assert_allclose(np.asarray(fm), np.asarray(fa), rtol=1e-5, atol=1e-6)  # mirror-invariant features
  # JSON: the flag is written only when set (older records read as single), and round-trips.
  assert "flip_average" not in arch.to_json() and flip.to_json()["flip_average"] is True
  assert fn_lib.Architecture.from_json(flip.to_json()) == flip and fn_lib.Architecture.from_json(arch.to_json()) == arch
  with pytest.raises(fn_lib.ConfigError, match="flip_average must be true or false"):
    fn_lib.Architecture.from_json({**flip.to_json(), "flip_average": "yes"})
  # Saved and loaded: the read-out is part of the hash, recorded beside every number, and an edited flag is caught.
  fn_lib.save_feature_net(tmp_path / "f", state, flip, {"dataset": "npz"})
  net = fn_lib.load_feature_net(tmp_path / "f")
  assert net.flip_average and net.sha256 == fn_lib.params_sha256(state, True) != fn_lib.params_sha256(state)
  np.testing.assert_allclose(net.features(x), np.asarray(fa), rtol=1e-5, atol=1e-6)
  assert net.describe()["feature_net_readout"].startswith("mean over the image")
  meta_path = tmp_path / "f" / fn_lib.META_FILE
  meta = json.loads(meta_path.read_text())
  del meta["architecture"]["flip_average"]
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(CheckpointError, match="hash to .* but classifier.json records"):
    fn_lib.load_feature_net(tmp_path / "f")
  fn_lib.save_feature_net(tmp_path / "s", state, arch, {"dataset": "npz"})
  assert "feature_net_readout" not in fn_lib.load_feature_net(tmp_path / "s").describe()


def test_augment_keeps_shapes_and_is_a_function_of_the_key():
  x, _ = _colour_data(8)
  a = np.asarray(tfn.augment(jax.random.key(1), x))
  assert a.shape == x.shape and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
  np.testing.assert_array_equal(a, np.asarray(tfn.augment(jax.random.key(1), x)))
  assert not np.array_equal(a, np.asarray(tfn.augment(jax.random.key(2), x)))
  # Without padding the only change is the flip: each output is its image or its mirror image.
  flat = np.asarray(tfn.augment(jax.random.key(3), x, pad=0)) * 255.0
  same = [np.allclose(f, im) for f, im in zip(flat, x)]
  mirrored = [np.allclose(f, im[:, ::-1]) for f, im in zip(flat, x)]
  assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)
  # With padding, the centre crop of the padded image is among the 81 crops; every crop keeps the image's content.
  crops = np.asarray(tfn.augment(jax.random.key(4), np.repeat(x[:1], 64, 0), pad=4))
  assert len({c.tobytes() for c in crops}) > 20


def _tiny_recipe(**kw) -> "tfn.ResNetRecipe":
  return tfn.ResNetRecipe(**dict(dict(epochs=2, batch_size=32, peak_lr=0.2, widths=TINY_WIDTHS, pad=2), **kw))


def test_resnet_recipe_lowers_the_loss_and_learns_tiny_colour_data():
  x, y = _colour_data(256)
  xt, yt = _colour_data(128, seed=1)
  state, history = tfn.train_resnet_classifier(x, y, 4, _tiny_recipe(epochs=4), eval_images=xt, eval_labels=yt)
  losses = [e["loss"] for e in history["epochs"]]
  assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
  assert history["eval_accuracy"] > 0.6, history  # 4 classes: chance is 0.25
  assert history["architecture"].feature_dim == 16


def _leaves(tree):
  return [np.asarray(a) for a in jax.tree.leaves(jax.device_get(tree))]


def test_resnet_resume_reproduces_an_uninterrupted_run(tmp_path):
  x, y = _colour_data(64)
  recipe = _tiny_recipe()  # 2 epochs of 2 steps
  whole, h_whole = tfn.train_resnet_classifier(x, y, 4, recipe, work_dir=tmp_path / "whole")
  _, h_first = tfn.train_resnet_classifier(x, y, 4, recipe, work_dir=tmp_path / "split", stop_after_epochs=1)
  assert h_first["done_epochs"] == 1 and h_first["eval_accuracy"] is None
  resumed, h_resumed = tfn.train_resnet_classifier(x, y, 4, recipe, work_dir=tmp_path / "split")
  assert h_resumed["steps_per_epoch"] == 2 and [e["epoch"] for e in h_resumed["epochs"]] == [1, 2]
  for a, b in zip(_leaves(whole), _leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  assert [e["loss"] for e in h_resumed["epochs"]] == [e["loss"] for e in h_whole["epochs"]]
  with pytest.raises(fn_lib.ConfigError, match="another recipe"):
    tfn.train_resnet_classifier(x, y, 4, _tiny_recipe(peak_lr=0.1), work_dir=tmp_path / "split")


def test_resnet_save_load_round_trip_and_the_hash_covers_running_statistics(tmp_path):
  x, y = _colour_data(64)
  state, history = tfn.train_resnet_classifier(x, y, 4, _tiny_recipe(epochs=1))
  record = fn_lib.save_feature_net(tmp_path / "c", state, history["architecture"], {"dataset": "npz"})
  net = fn_lib.load_feature_net(tmp_path / "c")
  assert net.sha256 == record["sha256"] and net.arch == history["architecture"] and net.feature_dim == 16
  xf = x[:10].astype(np.float32) / 255.0
  np.testing.assert_array_equal(net.features(xf), np.asarray(fn_lib.apply_net(net.module, state, xf)[0]))
  changed = jax.tree.map(np.array, jax.device_get(state))
  changed["batch_stats"]["stem_bn"]["mean"][0] += 1e-3
  assert fn_lib.params_sha256(changed) != record["sha256"]


def test_command_trains_the_resnet_resumably_and_refuses_cnn_flags(tmp_path, monkeypatch):
  import dataclasses

  @dataclasses.dataclass(frozen=True)
  class Tiny(tfn.ResNetRecipe):
    widths: tuple = TINY_WIDTHS

  monkeypatch.setattr(tfn, "ResNetRecipe", Tiny)
  monkeypatch.setitem(tfn.TARGETS, "npz", 99.9)
  x, y = _colour_data(80)
  data = tmp_path / "colour.npz"
  np.savez(data, x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
  out, work = tmp_path / "clf", tmp_path / "work"
  args = ["--dataset=npz", f"--data_path={data}", f"--out={out}", "--arch=resnet", "--epochs=2", "--batch_size=16",
          f"--work_dir={work}"]
  assert tfn.main(args + ["--stop_after_epochs=1"]) == 0
  assert not out.exists() and [e["epoch"] for e in json.loads((work / tfn.HISTORY_FILE).read_text())] == [1]
  with pytest.raises(GenJaxError, match="below the target 99.9.*--allow_below_target to save this network"):
    tfn.main(args)
  assert not out.exists()
  history = json.loads((work / tfn.HISTORY_FILE).read_text())
  assert [e["epoch"] for e in history] == [1, 2]
  assert tfn.main(args + ["--allow_below_target"]) == 0  # resumes at the end: saves without training again
  assert json.loads((work / tfn.HISTORY_FILE).read_text()) == history
  net = fn_lib.load_feature_net(out)
  assert net.arch.kind == "resnet" and net.meta["train_epochs"] == 2 and net.meta["train_steps"] == 8
  # The default read-out is flip-averaged; --no-flip_average reads the same finished run once, without training,
  # and saves another feature network (another sha256), its accuracy that read-out's.
  assert net.flip_average and net.meta["readout"].startswith("mean over the image and its horizontal mirror")
  single = tmp_path / "single"
  assert tfn.main([a for a in args if not a.startswith("--out")] + [f"--out={single}", "--no-flip_average",
                                                                    "--allow_below_target"]) == 0
  assert json.loads((work / tfn.HISTORY_FILE).read_text()) == history
  once = fn_lib.load_feature_net(single)
  assert not once.flip_average and once.meta["readout"] == "single" and once.sha256 != net.sha256
  assert fn_lib.params_sha256(once.params, flip_average=True) == net.sha256  # same weights, another read-out
  xt = x[64:].astype(np.float32) / 255.0
  assert not np.allclose(once.logits(xt), net.logits(xt), atol=1e-5)   # two feature spaces, each accuracy its own
  assert once.meta["test_accuracy"] == pytest.approx(np.mean(once.predict(xt) == y[64:]))
  assert net.meta["test_accuracy"] == pytest.approx(np.mean(net.predict(xt) == y[64:]))
  with pytest.raises(fn_lib.ConfigError, match="--epochs"):
    tfn.main(args + ["--steps=5"])
  with pytest.raises(fn_lib.ConfigError, match="resnet recipe"):
    tfn.main(["--dataset=npz", f"--data_path={data}", "--epochs=2"])
  with pytest.raises(fn_lib.ConfigError, match="--flip_average belong to the resnet"):
    tfn.main(["--dataset=npz", f"--data_path={data}", "--flip_average"])
  # --widths: the residual net's widths (features = the last), recorded; a bad list is refused before training.
  wide = tmp_path / "wide"
  assert tfn.main(args[:2] + [f"--out={wide}", "--arch=resnet", "--epochs=1", "--batch_size=16", "--widths=4,8,8,12",
                              f"--work_dir={tmp_path / 'work_wide'}", "--allow_below_target"]) == 0
  net = fn_lib.load_feature_net(wide)
  assert net.arch.widths == (4, 8, 8, 12) and net.feature_dim == 12 and net.meta["recipe"]["widths"] == [4, 8, 8, 12]
  for bad in ("4,8,8", "4,8,x,12", "4,8,0,12"):
    with pytest.raises(fn_lib.ConfigError, match=r"--widths=.* must be 4 positive integers"):
      tfn.main(args + [f"--widths={bad}"])
