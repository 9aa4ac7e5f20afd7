"""Sample quality measured while training: the curve that shows how stable a run is.

Every `config.train.eval_every` steps (0 = off) and at the last step, `config.train.eval_samples` samples
are drawn with the weights used for sampling (EMA where kept, with batch-norm statistics recomputed for them;
then also the raw weights, logged as <metric>_raw), always from the same prior draws, and scored with the
instruments of `gen_jax/eval`:

  images with a feature classifier (mnist, fashion_mnist, binarized_mnist, or eval.feature_net):
      fd_classifier: Frechet distance in the classifier's features to eval_samples images of the reference split
      (eval.reference_split), a seeded class-balanced draw by the rule of eval.py's reference set (data/subsets.py,
      purpose 'reference'); the reference statistics are computed once per process
  2-D mixtures (ring8, grid25): modes_covered, high_quality_fraction, kl_to_uniform (3 std, as eval.py)
  Stacked MNIST: modes_covered (of 1000), kl_to_uniform, digits read by the MNIST classifier

The numbers go to metrics.jsonl and TensorBoard as rows with split "eval" (the report plots them as training
curves) and the protocol (reference, sample count, feature network and its hash, seed) to
`<workdir>/training_eval.json`. Frechet distances are biased in the sample count: compare these along a run
and between runs with the same eval_samples, not with eval.py's numbers (10000 samples by default).
"""
from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from gen_jax import rng
from gen_jax.data import subsets
from gen_jax.data.synthetic import MixtureDataset, StackedMnist
from gen_jax.errors import GenJaxError
from gen_jax.storage.atomic import write_text_atomic
from gen_jax.eval import batching
from gen_jax.eval.features import cache as feature_cache
from gen_jax.eval.metrics import modes
from gen_jax.eval.metrics import frechet
from gen_jax.eval.model_api import EvalModel, unit_images
from gen_jax.eval.placement import eval_placement

PROTOCOL_FILE = "training_eval.json"


class TrainingEval:
  """Measures one run's samples at given steps; `create` returns None when there is nothing to measure."""

  def __init__(self, run, config, kind: str, feature_net=None):
    self.run = run
    self.kind = kind                       # "images" | "mixture" | "stacked"
    self.every = int(config.train.eval_every)
    self.num_samples = int(config.train.eval_samples)
    self.placement = eval_placement(int(config.eval.num_devices))
    self.batch_size = self.placement.round_batch(int(config.eval.batch_size))
    self.feature_net = feature_net.place(self.placement) if feature_net is not None else None
    self.key = rng.for_purpose(rng.root_key(int(config.seed)), "training_eval")
    self.protocol = {"every_steps": self.every, "num_samples": self.num_samples, "seed": int(config.seed),
                     "draws": "the same prior draws at every evaluation (key fold_in(root, 'training_eval'))",
                     "params": "ema" if float(config.train.ema_decay) > 0 else "raw",
                     "raw_params": ("also the raw weights, as <metric>_raw"
                                    if float(config.train.ema_decay) > 0 else "-"),
                     "batch_norm_statistics": "where the sampled network has batch norm: recomputed for the "
                                              "EMA weights on 2048 fixed prior draws (standing statistics); "
                                              "the raw weights use their running averages",
                     "dataset": run.dataset.name}
    if kind == "images":
      split = str(config.eval.reference_split)
      images = getattr(run.dataset, split).images
      if len(images) < self.num_samples:
        print(f"Note: config.train.eval_samples={self.num_samples} exceeds the {len(images)} images of the "
              f"{run.dataset.name} {split} split; measuring {len(images)} samples against all of them.", flush=True)
        self.num_samples = self.protocol["num_samples"] = len(images)
      subset_seed = int(config.eval.subset_seed)
      ref_split = getattr(run.dataset, split)
      _, ref_images, _ = subsets.subset(ref_split, self.num_samples, subset_seed, "reference")
      # The same draw for every run on this dataset: its features are kept on disk by content (features/cache.py).
      ref_features = feature_cache.cached_apply(self.feature_net, unit_images(ref_images), self.batch_size)[0]
      self.reference = frechet.feature_stats(np.asarray(ref_features, np.float64))
      self.protocol.update(metrics=["fd_classifier"],
                           reference=f"{run.dataset.name} {split} split: " + subsets.describe_subset(
                               self.num_samples, len(images), subset_seed, "reference",
                               ref_split.labels is not None),
                           feature_network=feature_net.describe(), feature_network_sha256=feature_net.sha256)
    elif kind == "mixture":
      min_count = modes.default_min_count(self.num_samples, len(run.dataset.centers))
      self.protocol.update(metrics=["modes_covered", "high_quality_fraction", "kl_to_uniform"],
                           high_quality="within 3.0 std of the nearest mode",
                           mode_covered_if=f">= {min_count} high-quality samples")
    else:
      self.protocol.update(metrics=["modes_covered", "kl_to_uniform"],
                           mode=modes.STACKED_MNIST_MODE_RULE,
                           feature_network_sha256=feature_net.sha256)

  @classmethod
  def create(cls, run, config) -> "TrainingEval | None":
    if int(config.train.eval_every) <= 0:
      return None
    dataset = run.dataset
    if isinstance(dataset, MixtureDataset):
      return cls(run, config, "mixture")
    from gen_jax.eval.features import feature_net as feature_net_lib
    if not config.eval.feature_net and dataset.name in feature_net_lib.OWN_DATA:
      if dataset.train.labels is None:
        print(f"Note: config.train.eval_every={config.train.eval_every} but your own data ({dataset.name}) has no "
              "class labels, so no feature classifier can be trained for it (an image folder needs one sub-folder "
              "per class): the training-time sample quality is not measured.", flush=True)
        return None
      colour = tuple(dataset.image_shape)[-1] == 3
      command = feature_net_lib.train_command(dataset.name, data_path=config.data.path, colour=colour)
      print(f"Note: config.train.eval_every={config.train.eval_every} but your own data ({dataset.name}) has no "
            f"feature classifier yet: train one with `{command}`, then pass "
            "--config.eval.feature_net=<that folder>.",
            flush=True)
      return None
    directory = config.eval.feature_net or feature_net_lib.default_feature_net_dir(dataset.name)
    try:
      net = feature_net_lib.load_feature_net(directory, data_dir=str(config.data.get("data_dir", "") or ""))
    except GenJaxError as e:
      print(f"Note: config.train.eval_every={config.train.eval_every} but sample quality cannot be measured "
            f"during training: {e}", flush=True)
      return None
    if isinstance(dataset, StackedMnist):
      return cls(run, config, "stacked", net)
    if tuple(net.image_shape) != tuple(dataset.image_shape):
      print(f"Note: config.train.eval_every: the feature classifier in {directory} takes images "
            f"{tuple(net.image_shape)}, the data are {tuple(dataset.image_shape)}; not measured during training.",
            flush=True)
      return None
    return cls(run, config, "images", net)

  def due(self, step: int, last: bool) -> bool:
    return last or step % self.every == 0

  def _features(self, images: np.ndarray, cancel=None) -> np.ndarray:
    return np.asarray(self.feature_net.features(images, batch_size=self.batch_size, cancel=cancel), np.float64)

  def measure(self, models, stop_requested=None) -> dict[str, float] | None:
    """The metrics of the current weights (every process calls this: the weights may span all of them), or None
    when `stop_requested()` turned True before they were done: a SIGTERM arriving during an evaluation abandons it
    between batches, so the run checkpoints and exits in seconds rather than after the evaluation (the resumed run
    measures that checkpoint first). Single-process runs only: the processes of a multi-host run finish the
    evaluation together, since one leaving a collective early would hang the others.

    Where EMA parameters are kept, the EMA weights (with batch-norm statistics recomputed for them) give the
    plain names and the raw weights (with their running statistics) the same metrics suffixed `_raw`, so the
    curve shows whether a change is the model's or the average's."""
    cancel = stop_requested if jax.process_count() == 1 else None
    family = self.run.family
    try:
      out = self._measure(models, cancel)
      if family.params_kind(models) == "ema":
        out.update({f"{k}_raw": v for k, v in self._measure(family.raw_models(models), cancel).items()})
    except batching.Cancelled:
      return None
    return out

  def _measure(self, models, cancel=None) -> dict[str, float]:
    model = EvalModel(self.run.family, models, self.run.dataset, self.placement)
    samples = batching.generate(lambda k, m: model.sample(k, m), self.key, self.num_samples, self.batch_size,
                                cancel=cancel)
    if self.kind == "images":
      return {"fd_classifier": frechet.frechet_distance(self.reference,
                                                        frechet.feature_stats(self._features(samples, cancel)))}
    if self.kind == "mixture":
      stats = modes.mixture_mode_stats(samples, self.run.dataset.centers, self.run.dataset.std, num_std=3.0)
      return {k: stats[k] for k in ("modes_covered", "high_quality_fraction", "kl_to_uniform")}
    net = self.feature_net
    stats = modes.stacked_mnist_mode_stats(
        samples, lambda x: np.argmax(np.asarray(net.logits(x, batch_size=self.batch_size, cancel=cancel)), axis=-1))
    return {k: stats[k] for k in ("modes_covered", "kl_to_uniform")}

  def write_protocol(self, workdir: pathlib.Path) -> None:
    write_text_atomic(pathlib.Path(workdir) / PROTOCOL_FILE, json.dumps(self.protocol, indent=2) + "\n")

  def describe(self) -> str:
    p = self.protocol
    what = ", ".join(p["metrics"])
    ref = ""
    if "reference" in p:
      net = p["feature_network"]
      ref = (f" vs the {p['reference']} in the features of the {net.get('feature_net_dataset', '')} classifier "
             f"(sha256 {p['feature_network_sha256'][:12]})")
    return (f"{what} of {p['num_samples']} samples ({p['params']} weights) every {p['every_steps']} steps{ref} "
            f"(seed {p['seed']})")


def make_training_evaluator(run, config) -> TrainingEval | None:
  """The during-training evaluator train.py passes to `gen_jax.train.loop.train` (None: nothing to measure)."""
  return TrainingEval.create(run, config)
