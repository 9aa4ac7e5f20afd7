"""The evaluation suite: every model family measured with the same instruments.

`run_suite` measures a restored model group by group (`config.eval.suites`); a group that does not apply to
a model (no encoder, not conditional, no classifier for this dataset, ...) is skipped with the reason recorded,
never silently. Each group returns its numbers and its protocol; `gen_jax/eval/evaluate.py` writes them to
`<workdir>/eval/metrics.json`.

  likelihood  ELBO, importance-sampled NLL, active units (likelihood models), reconstruction error (encoder models)
  samples     classifier-feature Frechet distance, KID, classifier score, precision/recall,
              density/coverage, each with its real-data floor; InceptionV3 FID when weights are supplied
  modes       2-D mixtures: modes covered, high-quality fraction; Stacked MNIST: modes of 1000, KL to uniform
  latent      perceptual path length in the classifier's feature space
  imputation  error on masked pixels (half, centre square, random) against the truth
  cas         classification accuracy score and augmentation (conditional models)
"""
from __future__ import annotations

import time
from typing import Any, Callable

import jax
import numpy as np

from gen_jax import rng
from gen_jax.data.synthetic import MixtureDataset, StackedMnist
from gen_jax.errors import ConfigError, GenJaxError
from gen_jax.eval.model_api import EvalModel
from gen_jax.eval.placement import eval_placement

GROUPS = ("likelihood", "samples", "modes", "latent", "imputation", "cas")
EVAL_SUITES = GROUPS   # the choices of config.eval.suites
REFERENCE_SPLITS = ("test", "train")   # the choices of config.eval.reference_split


def validate_eval_config(config) -> None:
  """The checks of evaluation's own keys (eval.suites, eval.reference_split), made at start-up by train.py,
  eval.py and studies; a ConfigError naming the key and its choices."""
  unknown = [s for s in (config.eval.suites or ()) if s not in EVAL_SUITES]
  if unknown:
    raise ConfigError(f"config.eval.suites has unknown group(s) {unknown}; choose from {', '.join(EVAL_SUITES)}")
  if config.eval.reference_split not in REFERENCE_SPLITS:
    raise ConfigError(f"config.eval.reference_split={config.eval.reference_split!r} is not valid; choose one of "
                      f"{', '.join(REFERENCE_SPLITS)}")


class _Skip(Exception):
  """A group that does not apply; the message says why (and how to make it apply, where possible)."""


def _feature_net(dataset, eval_cfg, placement, data_path: str = "", data_dir: str = ""):
  """The dataset's classifier on the evaluation mesh. No classifier at the default place skips the groups that need
  one; a config.eval.feature_net that does not load is an error (a typo must not turn numbers into skips)."""
  from gen_jax.eval.features import feature_net as feature_net_lib
  configured = eval_cfg.feature_net
  if not configured and dataset.name in feature_net_lib.OWN_DATA:
    cmd = feature_net_lib.train_command(dataset.name, data_path=data_path,
                                        colour=tuple(dataset.image_shape)[-1] == 3)
    raise _Skip(f"no feature classifier for your own data ({dataset.name}): train one with "
                f"`{cmd}`, then pass --config.eval.feature_net=<that folder>")
  directory = configured or feature_net_lib.default_feature_net_dir(dataset.name)
  try:
    return feature_net_lib.load_feature_net(directory, data_dir=data_dir).place(placement)
  except GenJaxError as e:
    if configured:
      raise type(e)(f"config.eval.feature_net={configured!r}: {e}") from None
    raise _Skip(f"no feature classifier: {e}") from None


def static_skips(config, groups) -> dict[str, str]:
  """{group: reason} for the groups of `groups` that the config alone shows will be skipped (each group's own check
  says the same when it runs), so that eval.py need not load a whole dataset to learn that nothing runs."""
  from gen_jax.data.synthetic import MIXTURE_NAMES
  from gen_jax.eval.features import feature_net as feature_net_lib
  from gen_jax.models.registry import family_class
  name, family = config.data.name, config.model.family
  caps = family_class(family).capabilities_for(config)   # None: the family cannot tell before it is built
  toy, stacked = name in MIXTURE_NAMES, name == "stacked_mnist"
  no_net = None
  if not config.eval.feature_net:
    if name in feature_net_lib.OWN_DATA:
      no_net = f"no feature classifier for your own data ({name})"
    elif not (feature_net_lib.default_feature_net_dir(name) / feature_net_lib.META_FILE).is_file():
      no_net = f"no feature classifier in {feature_net_lib.default_feature_net_dir(name)}"
  image_only = "2-D toy data" if toy else ("Stacked MNIST: measured by its 1000-mode count" if stacked else None)
  reasons = {}
  for group in groups:
    if group == "likelihood" and caps is not None and not caps.has_encoder:
      reasons[group] = f"a {family} has no encoder"
    elif group == "modes" and not (toy or stacked):
      reasons[group] = "mode counts need a dataset with known modes (ring8, grid25, stacked_mnist)"
    elif group in ("samples", "latent", "imputation", "cas") and image_only:
      reasons[group] = image_only
    elif group in ("samples", "latent") and no_net:
      reasons[group] = no_net
    elif group == "cas" and caps is not None and not caps.conditional:
      reasons[group] = "the model is not class-conditional"
  return reasons


def _check_feature_net_fits(net, model: EvalModel):
  if tuple(net.image_shape) != tuple(model.data_shape):
    raise _Skip(f"the feature classifier takes images {tuple(net.image_shape)} but the model makes "
                f"{tuple(model.data_shape)}")


def _stacked_real_triples(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
  """n Stacked MNIST images in [0, 1], [n, H, W, 3], from grey uint8 images [M, H, W, 1] drawn with replacement."""
  idx = rng.integers(0, images.shape[0], size=(n, 3))
  return np.concatenate([images[idx[:, c]] for c in range(3)], axis=-1).astype(np.float32) / 255.0


class Suite:
  """Runs the groups of `config.eval.suites` on one model; shares samples and the classifier between groups."""

  def __init__(self, run, models: dict, key: jax.Array, eval_cfg, seed: int, progress: bool = False):
    self.run = run
    self.dataset = run.dataset
    self.placement = eval_placement(int(eval_cfg.num_devices))
    self.model = EvalModel(run.family, models, run.dataset, self.placement)
    self.models = self.model.models      # on the evaluation mesh
    # Batches split evenly over the evaluation devices: config.eval.batch_size rounded up to a multiple of their count.
    self.batch_size = self.placement.round_batch(int(eval_cfg.batch_size))
    self.key = key
    self.cfg = eval_cfg
    self.seed = seed
    self.progress = progress
    self._net = None

  @property
  def feature_net(self):
    if self._net is None:
      data_cfg = getattr(getattr(self.run, "config", None), "data", None)
      path, data_dir = (str(data_cfg.get(key, "") or "") if data_cfg is not None else ""
                        for key in ("path", "data_dir"))
      self._net = _feature_net(self.dataset, self.cfg, self.placement, data_path=path, data_dir=data_dir)
    return self._net

  def _image_model(self):
    if not self.model.is_image:
      raise _Skip("2-D toy data: image metrics do not apply (see 'modes')")
    if isinstance(self.dataset, StackedMnist):
      raise _Skip("Stacked MNIST: measured by its 1000-mode count (see 'modes')")

  def _test(self):
    split = self.dataset.test
    labels = split.labels if split.labels is not None else np.zeros(len(split.images), np.int32)
    return split.images, labels

  # --- groups -----------------------------------------------------------------------------------------------
  def likelihood(self, key):
    if not self.model.has_encoder:
      raise _Skip(f"a {self.model.family_name} has no encoder: no ELBO, NLL or reconstruction")
    from gen_jax.eval.groups.likelihood import evaluate_likelihood_group
    return evaluate_likelihood_group(self.run.family, self.models, self.dataset, key, self.cfg,
                                     progress=self.progress, placement=self.placement)

  def samples(self, key):
    self._image_model()
    from gen_jax.eval.groups.sample_quality import evaluate_sample_quality, inception_fid
    net = self.feature_net
    _check_feature_net_fits(net, self.model)
    out = evaluate_sample_quality(self.model, self.dataset, net, key, self.cfg, seed=self.seed,
                                  progress=self.progress)
    metrics, protocol = out["metrics"], out["protocol"]
    from gen_jax.eval.features import inception
    requested = self.cfg.inception_weights
    path = inception.resolve_weights_path(requested)
    if path is None and requested:   # asked for explicitly: a wrong path is an error, not a silent skip
      raise inception.InceptionWeightsMissing(inception.missing_weights_message(requested))
    if path is None:
      protocol["fid_inception"] = ("not computed: no InceptionV3 weights (set config.eval.inception_weights or "
                                   f"${inception.ENV_VAR} to pytorch-fid's {inception.WEIGHTS_FILENAME})")
    else:
      net_i = inception.load_fid_inception(path)
      metrics.update(inception_fid(net_i, out["samples"], out["real"], out["floor_set"], self.batch_size))
      protocol["fid_inception"] = (f"pytorch-fid InceptionV3 pool3 (2048-d), bilinear resize to 299, "
                                   f"weights {path.name} sha256 {net_i.sha256}; same sets as above")
    return {"metrics": metrics, "protocol": protocol}

  def modes(self, key):
    n = int(self.cfg.num_samples)
    if isinstance(self.dataset, MixtureDataset):
      from gen_jax.eval.metrics.modes import mixture_mode_stats
      from gen_jax.eval.batching import generate
      samples = generate(lambda k, m: self.model.sample(k, m), key, n, 10_000)
      stats = mixture_mode_stats(samples, self.dataset.centers, self.dataset.std, num_std=3.0)
      metrics = {k: stats[k] for k in ("modes_covered", "high_quality_fraction", "kl_to_uniform", "num_modes")}
      protocol = {"num_samples": n, "high_quality": f"within {stats['num_std']} std of the nearest mode",
                  "mode_covered_if": f">= {stats['min_count']} high-quality samples", "params": self.model.params_kind,
                  "reference": f"{self.dataset.name} mixture centres"}
      return {"metrics": metrics, "protocol": protocol}
    if isinstance(self.dataset, StackedMnist):
      from gen_jax.eval.batching import generate
      from gen_jax.eval.metrics.modes import STACKED_MNIST_MODE_RULE, stacked_mnist_mode_stats
      net = self.feature_net   # classifiers/mnist: default_feature_net_dir maps stacked_mnist to mnist
      samples = generate(lambda k, m: self.model.sample(k, m), key, n, self.batch_size,
                         progress="samples" if self.progress else None)
      predict = lambda x: np.argmax(np.asarray(net.logits(x)), axis=-1)  # noqa: E731
      stats = stacked_mnist_mode_stats(samples, predict)
      metrics = {k: stats[k] for k in ("modes_covered", "kl_to_uniform", "num_modes")}
      # The floor: as many real triples, each channel an independent uniform draw from the test split (what a
      # perfect generator scores with this classifier and this sample count).
      real = _stacked_real_triples(self.dataset.test.images, n, np.random.default_rng(self.seed))
      floor = stacked_mnist_mode_stats(real, predict)
      metrics.update(modes_covered_floor=floor["modes_covered"], kl_to_uniform_floor=floor["kl_to_uniform"])
      protocol = {"num_samples": n, "mode": STACKED_MNIST_MODE_RULE,
                  "feature_network_sha256": net.sha256, "kl": "KL(empirical mode distribution || uniform over 1000)",
                  "params": self.model.params_kind,
                  "floor": f"{n} real triples: three test-split digits drawn uniformly with replacement (numpy seed "
                           f"{self.seed})"}
      return {"metrics": metrics, "protocol": protocol}
    raise _Skip("mode counts need a dataset with known modes (ring8, grid25, stacked_mnist)")

  def latent(self, key):
    self._image_model()
    from gen_jax.eval.groups.latent import latent_smoothness
    net = self.feature_net
    _check_feature_net_fits(net, self.model)
    images, labels = self._test()
    out = latent_smoothness(self.model, net.features, images, labels, key, num_pairs=int(self.cfg.ppl_samples),
                            epsilon=float(self.cfg.ppl_epsilon), batch_size=self.batch_size,
                            subset_seed=int(self.cfg.subset_seed))
    out["protocol"]["feature_network_sha256"] = net.sha256
    return out

  def imputation(self, key):
    self._image_model()
    from gen_jax.eval.groups.imputation import evaluate_imputation
    images, labels = self._test()
    return evaluate_imputation(self.model, images, labels, key, num_examples=int(self.cfg.imputation_examples),
                               steps=int(self.cfg.imputation_steps), batch_size=self.batch_size,
                               train_images=self.dataset.train.images, progress=self.progress,
                               num_imputations=int(self.cfg.imputation_samples),
                               subset_seed=int(self.cfg.subset_seed),
                               chain=str(self.cfg.get("imputation_chain", "mwg")))

  def cas(self, key):
    self._image_model()
    if not self.model.conditional:
      raise _Skip("the model is not class-conditional (CAS trains a classifier on labelled samples)")
    from gen_jax.eval.groups.augmentation import classification_accuracy_score
    out = classification_accuracy_score(self.model, self.dataset, key, num_samples=int(self.cfg.cas_samples),
                                        real_subset=int(self.cfg.cas_real_subset), num_steps=int(self.cfg.cas_steps),
                                        batch_size=128, include_full_real=False, progress=self.progress,
                                        subset_seed=int(self.cfg.subset_seed))
    if "skipped" in out:
      raise _Skip(out["skipped"])
    return out

  # --- driver ---------------------------------------------------------------------------------------------
  def _check_before_any_group(self, groups) -> None:
    """Errors that would otherwise surface only after minutes of earlier groups (or of drawing samples)."""
    for group in groups:
      if group not in GROUPS:
        raise GenJaxError(f"unknown evaluation group {group!r}; choose from {', '.join(GROUPS)}")
    requested = self.cfg.inception_weights
    if "samples" in groups and requested:
      from gen_jax.eval.features import inception
      if inception.resolve_weights_path(requested) is None:   # named explicitly: a wrong path is an error
        raise inception.InceptionWeightsMissing(inception.missing_weights_message(requested))

  def run_groups(self, groups) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    protocol: dict[str, Any] = {}
    timing: dict[str, float] = {}
    self._check_before_any_group(groups)
    for group in groups:
      fn: Callable = getattr(self, group)
      t0 = time.time()
      if self.progress:
        print(f"[eval] {group} ...", flush=True)
      try:
        out = fn(rng.for_purpose(self.key, group))
      except _Skip as skip:
        protocol[group] = {"skipped": str(skip)}
        continue
      finally:
        timing[group] = round(time.time() - t0, 2)
      clash = set(out["metrics"]) & set(metrics)
      if clash:
        raise GenJaxError(f"evaluation group {group!r} reports metrics already reported: {sorted(clash)}")
      metrics.update(out["metrics"])
      protocol[group] = out["protocol"]
    return {"metrics": metrics, "protocol": protocol, "seconds": timing, "devices": self.placement.describe()}


def run_suite(run, models: dict, key: jax.Array, eval_cfg, seed: int, progress: bool = False) -> dict[str, Any]:
  groups = tuple(eval_cfg.suites)
  return Suite(run, models, key, eval_cfg, seed, progress).run_groups(groups)
