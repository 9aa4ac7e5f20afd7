"""The evaluation suite end to end: groups run or say why not, numbers carry the classifier's hash, and a
model that reproduces the reference set scores what a perfect model must."""
import json
import types

import jax
import numpy as np
import pytest

from gen_jax import parallel
from gen_jax.errors import GenJaxError
from gen_jax.eval.features import feature_net as feature_net_lib
from gen_jax.eval import suite as suite_lib
from gen_jax.eval.groups.sample_quality import evaluate_sample_quality
from gen_jax.eval.suite import run_suite
from gen_jax.train import loop

from conftest import REPO_ROOT, TINY

GAN_TINY = ("model.g_width=8", "model.d_width=8", "data.batch_size=16")
MNIST_SHA = json.loads((REPO_ROOT / "classifiers" / "mnist" / "classifier.json").read_text())["sha256"]


def _suite(config, suites):
  from gen_jax.config import apply_overrides
  apply_overrides(config, [f"eval.suites={suites!r}"])
  run = loop.setup(config, mesh=parallel.make_mesh(jax.devices()[:1]))
  state = run.init_state()
  return run_suite(run, state.models, run.keys["eval"], config.eval, int(config.seed))


class _Replay:
  """A 'model' whose samples are the reference images themselves: a perfect generator."""
  conditional = False
  params_kind = "raw"

  def __init__(self, images):
    self.images = np.asarray(images, np.float32) / 255.0
    self.drawn = 0

  def sample(self, key, n):
    out = self.images[self.drawn:self.drawn + n]
    self.drawn += n
    return out


def test_a_model_that_reproduces_the_reference_set_scores_zero_distance_and_full_precision_recall(make_config):
  from gen_jax.data import load_dataset
  config = make_config("configs/gan.py", *TINY, "eval.num_samples=64", "eval.kid_subset_size=32")
  dataset = load_dataset(config.data)
  net = feature_net_lib.load_feature_net(feature_net_lib.default_feature_net_dir("mnist"))
  out = evaluate_sample_quality(_Replay(dataset.test.images), dataset, net, jax.random.key(0), config.eval, seed=0)
  m = out["metrics"]
  assert abs(m["fd_classifier"]) < 1e-3          # float64 round-off of the matrix square root
  assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0 and m["fd_classifier_floor"] > 1e3 * abs(m["fd_classifier"])
  assert abs(m["kid"]) < 5 * m["kid_std"] + 1e-9
  assert m["fd_classifier_floor"] > 1.0          # other real images are farther away than the same images
  assert abs(m["classifier_score"] - m["classifier_score_real"]) < 1e-6
  assert out["protocol"]["feature_network_sha256"] == MNIST_SHA and out["protocol"]["num_samples"] == 64


def test_untrained_vae_is_far_from_real_data_and_every_number_carries_its_protocol(make_config):
  config = make_config("configs/vae.py", *TINY)
  result = _suite(config, ("likelihood", "samples", "latent", "imputation", "modes", "cas"))
  m, p = result["metrics"], result["protocol"]
  assert m["fd_classifier"] > 5 * m["fd_classifier_floor"]     # noise vs digits, with the real-data floor beside it
  assert m["precision"] < m["precision_floor"] and m["recall"] < m["recall_floor"]
  assert p["samples"]["feature_network_sha256"] == MNIST_SHA and p["latent"]["feature_network_sha256"] == MNIST_SHA
  for key in ("nll", "elbo", "ppl_prior_slerp", "ppl_encoding_lerp", "impute_mse_half", "impute_mse_centre_meanfill"):
    assert np.isfinite(m[key]), key
  assert "known modes" in p["modes"]["skipped"] and "not class-conditional" in p["cas"]["skipped"]
  assert p["samples"]["num_samples"] == 64 and "not computed" in p["samples"]["fid_inception"]
  # The untrained VAE's likelihood is worse than every pixel on its own (the baseline beside it) -> marked in reports.
  assert m["nll_bits_per_dim"] > m["nll_bits_per_dim_independent"] > 0
  assert "every pixel on its own" in p["likelihood"]["baseline"] and "Bernoulli" in p["likelihood"]["baseline"]


def test_gan_has_no_likelihood_and_stacked_mnist_counts_modes_with_the_mnist_classifier(make_config):
  config = make_config("configs/gan.py:stacked", *TINY, *GAN_TINY)
  result = _suite(config, ("likelihood", "modes", "samples"))
  m, p = result["metrics"], result["protocol"]
  assert "no encoder" in p["likelihood"]["skipped"] and "1000-mode" in p["samples"]["skipped"]
  assert m["num_modes"] == 1000 and 1 <= m["modes_covered"] <= 64
  assert 0.0 <= m["kl_to_uniform"] <= np.log(1000) + 1e-9
  assert p["modes"]["feature_network_sha256"] == MNIST_SHA and p["modes"]["num_samples"] == 64
  # The real-data floor: 64 real triples hit ~62 distinct modes of 1000 (1000 * (1 - 0.999^64)); an untrained
  # generator's samples fall into far fewer, far less evenly.
  assert 55 <= m["modes_covered_floor"] <= 64 and m["modes_covered"] < m["modes_covered_floor"]
  assert m["kl_to_uniform_floor"] < m["kl_to_uniform"]
  assert "64 real triples" in p["modes"]["floor"]


def test_stacked_real_triples_stack_three_independent_test_digits():
  from gen_jax.eval.suite import _stacked_real_triples
  images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((10, 2, 2, 1), np.uint8)  # image i is all i
  triples = _stacked_real_triples(images, 5000, np.random.default_rng(0))
  assert triples.shape == (5000, 2, 2, 3) and triples.dtype == np.float32
  digits = np.rint(triples[:, 0, 0, :] * 255).astype(int)      # which image fed each channel
  assert np.all(triples * 255 == digits[:, None, None, :])
  assert all(len(np.unique(digits[:, c])) == 10 for c in range(3))
  assert abs(np.corrcoef(digits[:, 0], digits[:, 1])[0, 1]) < 0.05  # channels drawn independently


def test_a_named_classifier_that_does_not_exist_is_an_error_with_the_command_that_trains_it(make_config, tmp_path):
  """A typo in config.eval.feature_net must not turn the sample metrics into a skip (which would then replace
  earlier results): it is an error naming the key, the path and the training command."""
  config = make_config("configs/vae.py", *TINY, f"eval.feature_net={tmp_path / 'none'}")
  with pytest.raises(GenJaxError, match=r"config.eval.feature_net=.*none.*no such folder.*train_feature_net "
                                        r"--dataset=<dataset>"):
    _suite(config, ("samples",))


def test_own_data_has_no_default_classifier_and_the_command_names_its_data_path():
  cmd = feature_net_lib.train_command("image_folder")
  assert "--dataset=image_folder --data_path=<the image folder> --out=" in cmd and "--data_dir" not in cmd
  assert "--data_path=<the .npz file>" in feature_net_lib.train_command("npz", "/tmp/c")
  assert feature_net_lib.train_command("npz", "/tmp/c").endswith("--out=/tmp/c")
  assert feature_net_lib.train_command("mnist", "/tmp/my nets").endswith("--out='/tmp/my nets'")   # pasteable
  for channels, arch in ((1, ""), (3, " --arch=resnet")):   # own colour images get the residual net
    own = types.SimpleNamespace(name="image_folder", image_shape=(32, 32, channels))
    with pytest.raises(suite_lib._Skip, match=f"--data_path=/my/imgs{arch} --out=<"):
      suite_lib._feature_net(own, types.SimpleNamespace(feature_net=""), None, data_path="/my/imgs")


def test_classifier_score_uses_fewer_splits_when_there_are_fewer_than_ten_samples(make_config):
  from gen_jax.data import load_dataset
  net = feature_net_lib.load_feature_net(feature_net_lib.default_feature_net_dir("mnist"))
  config = make_config("configs/gan.py", *TINY, "eval.num_samples=6", "eval.kid_subset_size=6")
  dataset = load_dataset(config.data)
  out = evaluate_sample_quality(_Replay(dataset.train.images[-6:]), dataset, net, jax.random.key(0), config.eval,
                                seed=0)
  assert out["protocol"]["classifier_score"].startswith("exp(E KL(p(y|x)||p(y))), 6 splits")
  assert 1.0 <= out["metrics"]["classifier_score"] <= 10.0


def test_inception_weights_named_but_absent_is_an_error_that_says_where_to_get_them(make_config, tmp_path,
                                                                                    monkeypatch):
  """... before any group runs: not after the NLL (minutes) and the samples have been computed."""
  config = make_config("configs/vae.py", *TINY, f"eval.inception_weights={tmp_path / 'pt_inception.pth'}")
  ran = []
  monkeypatch.setattr(suite_lib.Suite, "likelihood", lambda self, key: ran.append("likelihood"))
  with pytest.raises(GenJaxError, match="pytorch-fid's InceptionV3 weights were not found"):
    _suite(config, ("likelihood", "samples"))
  assert ran == []


def test_conditional_vae_gets_a_classification_accuracy_score(make_config):
  config = make_config("configs/cvae.py", *TINY)
  result = _suite(config, ("cas",))
  m, p = result["metrics"], result["protocol"]["cas"]
  for key in ("cas_accuracy", "real_subset_accuracy", "real_subset_plus_generated_accuracy"):
    assert 0.0 <= m[key] <= 1.0, key
  assert "skipped" not in p


def test_kid_from_a_single_subset_reports_no_spread_and_says_why(make_config):
  """eval.num_samples <= eval.kid_subset_size: every subset would be the two whole sets, so KID is their
  U-statistic and kid_std is None (printed 'n/a'), not 0; with more samples than the subset size the spread is
  measured over the configured subsets."""
  from gen_jax.data import load_dataset
  from gen_jax.eval.metrics import kid
  net = feature_net_lib.load_feature_net(feature_net_lib.default_feature_net_dir("mnist"))
  results = {}
  for n in (32, 64):
    config = make_config("configs/gan.py", *TINY, f"eval.num_samples={n}", "eval.kid_subset_size=32",
                         "eval.kid_subsets=4")
    dataset = load_dataset(config.data)
    images = dataset.train.images[-n:]    # not the reference (test) images: KID clearly nonzero
    results[n] = evaluate_sample_quality(_Replay(images), dataset, net, jax.random.key(0), config.eval, seed=0)
  one, several = results[32], results[64]
  assert one["metrics"]["kid_std"] is None and np.isfinite(one["metrics"]["kid"])
  assert "one subset: all 32 vs all 32" in one["protocol"]["kid"] and "kid_std n/a" in one["protocol"]["kid"]
  assert several["metrics"]["kid_std"] > 0 and several["protocol"]["kid"] == "cubic polynomial kernel, 4 subsets of 32"
  # The single-subset value is the full-set U-statistic, computed once whatever eval.kid_subsets says.
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + 0.3
  est = kid.kid_estimate(a, b, num_subsets=50, subset_size=1000)
  assert est["std"] is None and est["num_subsets"] == 1 and est["subset_size"] == 20
  assert est["mean"] == pytest.approx(kid.mmd2_unbiased(a, b), rel=1e-12)
  assert kid.kid_estimate(a, b, num_subsets=1, subset_size=10)["std"] is None
  assert kid.kid_estimate(a, b, num_subsets=5, subset_size=10)["std"] > 0
  # The report and eval.py print it as '± n/a'.
  from gen_jax.eval.metric_text import cell_text
  assert cell_text("kid", {"kid": 0.05, "kid_std": None}) == "0.0500 ± n/a"


@pytest.mark.parametrize("override,pattern", [
    ("eval.suites=('likelihood', 'fid')", r"config\.eval\.suites has unknown group\(s\) \['fid'\]; choose from"),
    ("eval.reference_split=val", r"config\.eval\.reference_split='val' is not valid; choose one of test, train"),
])
def test_eval_keys_are_checked_by_eval_at_start_up(override, pattern):
  """eval.suites / eval.reference_split are evaluation's keys: eval/suite.py owns their choices and checks them."""
  from gen_jax import config as config_lib
  from gen_jax.errors import ConfigError
  config = config_lib.default_config("vae")
  config_lib.apply_overrides(config, [override])
  config_lib.validate_config(config)   # the model's checks do not know evaluation's keys
  with pytest.raises(ConfigError, match=pattern):
    suite_lib.validate_eval_config(config)
  suite_lib.validate_eval_config(config_lib.default_config("vae"))


def test_static_skips_ask_the_familys_capabilities_not_its_name():
  """No encoder -> likelihood skipped up front; not conditional -> cas skipped; a family that cannot tell its
  capabilities before it is built skips nothing up front (its groups decide when they run)."""
  from gen_jax import config as config_lib
  from gen_jax.models import registry
  from gen_jax.models.vae import VaeFamily
  gan = config_lib.default_config("gan")
  assert suite_lib.static_skips(gan, ("likelihood", "cas")) == {
      "likelihood": "a gan has no encoder", "cas": "the model is not class-conditional"}
  config_lib.apply_overrides(gan, ["model.conditional=true"])
  assert suite_lib.static_skips(gan, ("likelihood", "cas")) == {"likelihood": "a gan has no encoder"}
  assert suite_lib.static_skips(config_lib.default_config("vaegan"), ("likelihood",)) == {}

  class Opaque(VaeFamily):   # a registered family without capabilities_for
    name = "opaque_test_family"
    capabilities_for = classmethod(lambda cls, config: None)

  registry.register(Opaque.name, Opaque)
  try:
    config = config_lib.default_config("vae")
    config.model.family = Opaque.name
    assert suite_lib.static_skips(config, ("likelihood", "cas")) == {}
  finally:
    registry._FAMILIES.pop(Opaque.name)
