"""Sample quality and diversity of an image model in a feature space, each number beside its real-data floor.

Given N generated images and a real reference set (by default N test images), it reports in the features of
the dataset's own classifier (`gen_jax/eval/features/feature_net.py`):

  fd_classifier         Frechet distance between Gaussian fits of the two feature sets (lower is better)
  kid, kid_std          kernel distance, unbiased MMD^2 with a cubic polynomial kernel, over random subsets
                        (kid_std None when eval.num_samples <= eval.kid_subset_size: one subset, no spread)
  classifier_score      exp(E KL(p(y|x) || p(y))), the Inception-Score analogue (higher is better, max = #classes)
  precision, recall     improved precision / recall, k-NN manifolds (Kynkaanniemi et al. 2019)
  density, coverage     Naeem et al. 2020

and with `eval.inception_weights` (pytorch-fid's file) also `fid_inception`, the standard FID.

The real-data floor of each metric (suffix `_floor`) compares the reference set with as many images of the
other split (test vs train): what a perfect model would score with this sample count. Both real sets are seeded,
class-balanced draws (`gen_jax/data/subsets.py`, seed `eval.subset_seed`, purposes 'reference' and 'floor'), the
same for every model, never the first n images of a split (which may be sorted by class). Numbers from different
sample counts are not comparable (FD and KID are biased in N), which is why the protocol records N.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from gen_jax.data import subsets
from gen_jax.eval import batching
from gen_jax.eval.features import cache as feature_cache
from gen_jax.eval.features.feature_net import EVAL_BATCH
from gen_jax.eval.metrics import classifier_score as classifier_score_lib
from gen_jax.eval.metrics import kid
from gen_jax.eval.metrics import frechet
from gen_jax.eval.metrics import manifold
from gen_jax.eval.model_api import unit_images
from gen_jax.eval.placement import LEFT_TO_JIT

CLASSIFIER_SCORE_SPLITS = 10


def feature_metrics(real_feats: np.ndarray, fake_feats: np.ndarray, *, kid_subsets: int, kid_subset_size: int,
                    pr_k: int, dc_k: int, seed: int) -> dict[str, Any]:
  """All set-to-set metrics between two feature arrays [N, D]; "kid_std" is None when only one KID subset fits,
  and "kid_protocol" describes the KID subsets (text, not a metric)."""
  out = {"fd": float(frechet.frechet_distance(frechet.feature_stats(real_feats), frechet.feature_stats(fake_feats)))}
  est = kid.kid_estimate(real_feats, fake_feats, num_subsets=kid_subsets, subset_size=kid_subset_size,
                         key_or_seed=seed)
  out["kid"] = float(est["mean"])
  out["kid_std"] = None if est["std"] is None else float(est["std"])   # None: one subset, no spread (see kid.py)
  out["kid_protocol"] = est["description"]
  out.update({k: float(v) for k, v in manifold.precision_recall(real_feats, fake_feats, k=pr_k).items()})
  out.update({k: float(v) for k, v in manifold.density_coverage(real_feats, fake_feats, k=dc_k).items()})
  return out


def evaluate_sample_quality(model, dataset, feature_net, key: jax.Array, eval_cfg, *, seed: int,
                            progress: bool = False, samples: np.ndarray | None = None) -> dict[str, Any]:
  """Generated-vs-real metrics of `model` (an EvalModel) in `feature_net`'s space, with floors and protocol."""
  n_req = int(eval_cfg.num_samples)
  ref_name = str(eval_cfg.reference_split)
  floor_name = "train" if ref_name == "test" else "test"
  reference = getattr(dataset, ref_name)
  other = getattr(dataset, floor_name)
  n = min(n_req, len(reference.images), len(other.images))
  # An EvalModel's evaluation mesh: batches split evenly over it (a plain sampler has none).
  batch_size = getattr(model, "placement", LEFT_TO_JIT).round_batch(int(eval_cfg.batch_size))
  subset_seed = int(eval_cfg.subset_seed)
  _, real, ref_labels = subsets.subset(reference, n, subset_seed, "reference")
  # The floor holds the reference's class proportions (a class-balanced floor against a reference with the split's
  # own proportions overstated the floor by ~30% on MNIST), and so do a conditional model's sample labels.
  matched = ref_labels is not None and other.labels is not None
  if matched:
    floor_idx = subsets.matching_indices(other.labels, ref_labels, subset_seed, "floor")
  else:
    floor_idx = subsets.balanced_indices(len(other.images) if other.labels is None else other.labels, n,
                                         subset_seed, "floor")
  floor_set = other.images[floor_idx]
  real, floor_set = unit_images(real), unit_images(floor_set)
  sample_labels = None
  if model.conditional and ref_labels is not None:
    sample_labels = np.resize(np.asarray(ref_labels, np.int32), -(-n // batch_size) * batch_size)
  if samples is None:
    samples = batching.generate(model.sample, key, n, batch_size, progress="samples" if progress else None,
                                labels=sample_labels)
  samples = np.asarray(samples[:n], np.float32)

  def features_and_logits(x, what: str, cached: bool):   # one pass gives both (the classifier score reads logits)
    bar = f"features: {what}" if progress else None
    f, logits = (feature_cache.cached_apply(feature_net, x, EVAL_BATCH, progress=bar) if cached
                 else feature_net.apply(x, EVAL_BATCH, progress=bar))
    return np.asarray(f, np.float64), logits

  # The reference and floor are the same seeded draws for every run on this dataset: cached by content.
  f_fake, logits_fake = features_and_logits(samples, "samples", cached=False)
  f_real, logits_real = features_and_logits(real, "reference", cached=True)
  f_floor, _ = features_and_logits(floor_set, "floor", cached=True)
  opts = dict(kid_subsets=int(eval_cfg.kid_subsets), kid_subset_size=min(int(eval_cfg.kid_subset_size), n),
              pr_k=int(eval_cfg.pr_k), dc_k=int(eval_cfg.dc_k), seed=seed)
  model_m = feature_metrics(f_real, f_fake, **opts)
  floor_m = feature_metrics(f_real, f_floor, **opts)
  metrics: dict[str, Any] = {}
  kid_protocol = model_m.pop("kid_protocol")
  floor_m.pop("kid_protocol")
  for name, value in model_m.items():
    key_name = "fd_classifier" if name == "fd" else name
    metrics[key_name] = value
    if name != "kid_std":
      metrics[key_name + "_floor"] = floor_m[name]
  # 10 splits (the reference implementation's), fewer when there are fewer than 10 samples per set.
  cs_splits = max(1, min(CLASSIFIER_SCORE_SPLITS, len(samples), len(real)))
  cs_mean, cs_std = classifier_score_lib.classifier_score_from_logits(np.asarray(logits_fake), num_splits=cs_splits)
  cs_real, _ = classifier_score_lib.classifier_score_from_logits(np.asarray(logits_real), num_splits=cs_splits)
  metrics.update(classifier_score=float(cs_mean), classifier_score_std=float(cs_std),
                 classifier_score_real=float(cs_real))
  protocol = {
      "reference": f"{dataset.name} {ref_name} split: " + subsets.describe_subset(
          n, len(reference.images), subset_seed, "reference", reference.labels is not None),
      "floor": f"{dataset.name} {floor_name} split: " + (
          f"{len(floor_idx)} of {len(other.images)} images, seeded draw with the reference's class counts "
          f"(seed {subset_seed}, purpose 'floor'; gen_jax/data/subsets.py matching_indices)" if matched else
          subsets.describe_subset(n, len(other.images), subset_seed, "floor", other.labels is not None))
      + "; vs the reference",
      "num_samples": n,
      "labels": (("the reference images' labels (its class proportions)"
                  if sample_labels is not None else "balanced over classes (arange(n) % K)")
                 if model.conditional else "unconditional"),
      "params": model.params_kind,
      "feature_network": feature_net.describe(),
      "feature_network_sha256": feature_net.sha256,
      "kid": kid_protocol,
      "precision_recall_k": opts["pr_k"], "density_coverage_k": opts["dc_k"],
      "classifier_score": (f"exp(E KL(p(y|x)||p(y))), {cs_splits} splits; classifier_score_real on the reference "
                           "images"),
  }
  return {"metrics": metrics, "protocol": protocol, "samples": samples, "real": real, "floor_set": floor_set}


def inception_fid(inception, samples: np.ndarray, real: np.ndarray, floor_set: np.ndarray | None,
                  batch_size: int) -> dict[str, float]:
  """Standard FID (pytorch-fid's InceptionV3 pool3 features) of samples vs real, and of floor_set vs real."""
  def stats(x):
    return frechet.feature_stats(np.asarray(inception.features(x, batch_size=batch_size), np.float64))
  ref = stats(real)
  out = {"fid_inception": float(frechet.frechet_distance(ref, stats(samples)))}
  if floor_set is not None:
    out["fid_inception_floor"] = float(frechet.frechet_distance(ref, stats(floor_set)))
  return out
