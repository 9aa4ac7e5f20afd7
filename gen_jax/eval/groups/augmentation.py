"""Classification accuracy score and generative data augmentation, for conditional models.

Ravuri & Vinyals 2019 ("Classification Accuracy Score for conditional generative models"): a classifier trained
only on generated (image, label) pairs and tested on real test images is good exactly when the model's
class-conditional distributions match the data's, so CAS catches what a Frechet distance misses (wrong or mixed
classes, missing modes within a class). The augmentation variant asks whether generated samples help when real
labelled data are scarce.

Every classifier here is the feature-classifier recipe (gen_jax/eval/features/feature_net.py, trained from scratch by
gen_jax/eval/train_feature_net.train_classifier) with the same steps, batch and learning rate, and each is scored
on the whole real test split:

  cas                         trained on `num_samples` generated images, labels balanced (i mod K)
  real_subset                 trained on `real_subset` real train images, a seeded class-balanced draw
  real_subset_plus_generated  trained on the union of the two (uniform batches over the union)
  full_real (optional)        trained on the whole real train split: the ceiling of this recipe at this budget
                              (the stored feature classifier's accuracy, trained longer, is the other reference)
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from gen_jax.data import subsets
from gen_jax.eval import train_feature_net as tfn
from gen_jax.eval.batching import generate


def balanced_subset(labels: np.ndarray, size: int, num_classes: int, seed: int = 0) -> np.ndarray:
  """Indices (sorted) of a seeded class-balanced draw of `size` examples (gen_jax/data/subsets.py, purpose
  'cas_real_subset'): size // K per class, the size % K extra ones to classes chosen by the seed. Raises if a
  class has fewer than its share (a real subset for augmentation must hold every class equally)."""
  labels = np.asarray(labels)
  need = -(-int(size) // num_classes)
  for c in range(num_classes):
    have = int(np.sum(labels == c))
    if have < need:
      raise ValueError(f"class {c} has only {have} training examples; a balanced subset of {size} needs up to "
                       f"{need}. Fix: lower eval.cas_real_subset.")
  return np.sort(subsets.balanced_indices(labels, size, seed, "cas_real_subset"))


def generated_labels(num: int, num_classes: int) -> np.ndarray:
  """Balanced labels i mod K for the i-th generated sample."""
  return (np.arange(num) % num_classes).astype(np.int32)


def _sample_batch(num_classes: int, requested: int, num: int) -> int:
  """A sampling batch that is a multiple of K, so that chunk after chunk the labels are exactly i mod K."""
  size = max(num_classes, min(int(requested), num))
  return size - size % num_classes


def _seed(key: jax.Array, i: int) -> int:
  return int(jax.random.randint(jax.random.fold_in(key, i), (), 0, 2**31 - 1))


def classification_accuracy_score(model: Any, dataset: Any, key: jax.Array, *, num_samples: int, real_subset: int,
                                  num_steps: int, batch_size: int, learning_rate: float = tfn.DEFAULT_LR,
                                  sample_batch_size: int = 500, include_full_real: bool = True,
                                  widths: tuple[int, ...] = (32, 64, 128), feature_dim: int = 128,
                                  progress: bool = False, subset_seed: int = 0) -> dict:
  """Real-test accuracies (fractions) of classifiers trained on generated and/or real data; see module docstring.

  model: an EvalModel (or anything with .conditional, .num_classes, .data_shape, .sample(key, n, labels) returning
  float images [n, H, W, C] in [0, 1]). dataset: a gen_jax Dataset with labels. widths / feature_dim: the
  classifier's size (default: the feature classifier's). Returns {'metrics': {...},
  'protocol': {...}}, or {'skipped': reason} for an unconditional model, non-image data or an unlabelled dataset.
  """
  if not getattr(model, "conditional", False):
    return {"skipped": "CAS needs a class-conditional model (model.conditional is False)"}
  if len(tuple(model.data_shape)) != 3:
    return {"skipped": f"CAS trains an image classifier; this model's data are {tuple(model.data_shape)}, not images"}
  k = getattr(dataset, "num_classes", None)
  if k is None or dataset.train.labels is None or dataset.test.labels is None:
    return {"skipped": f"dataset {getattr(dataset, 'name', '?')!r} has no class labels"}
  if model.num_classes != k:
    raise ValueError(f"the model is conditioned on {model.num_classes} classes but dataset {dataset.name!r} has {k}. "
                     "Fix: evaluate the model on the dataset it was trained on.")

  sample_key, train_key = jax.random.split(key)
  bs = _sample_batch(k, sample_batch_size, num_samples)
  chunk_labels = generated_labels(bs, k)
  fake_x = generate(lambda kk, n: model.sample(kk, n, chunk_labels[:n]), sample_key, num_samples, bs,
                    progress="CAS samples" if progress else None)
  fake_x = np.clip(np.asarray(fake_x, np.float32), 0.0, 1.0)
  fake_y = generated_labels(num_samples, k)

  subset = balanced_subset(dataset.train.labels, real_subset, k, subset_seed)
  real_x = dataset.train.images[subset].astype(np.float32) / 255.0
  real_y = dataset.train.labels[subset]
  test_x, test_y = dataset.test.images, dataset.test.labels

  runs = {"cas": (fake_x, fake_y), "real_subset": (real_x, real_y),
          "real_subset_plus_generated": (np.concatenate([real_x, fake_x]), np.concatenate([real_y, fake_y]))}
  if include_full_real:
    runs["full_real"] = (dataset.train.images, dataset.train.labels)
  metrics, seeds, arch = {}, {}, None
  for i, (name, (x, y)) in enumerate(runs.items()):
    seeds[name] = _seed(train_key, i)
    _, history = tfn.train_classifier(x, y, k, num_steps=num_steps, batch_size=batch_size,
                                      learning_rate=learning_rate, seed=seeds[name], eval_images=test_x,
                                      eval_labels=test_y, progress=progress, widths=widths,
                                      feature_dim=feature_dim)
    metrics[f"{name}_accuracy"] = history["eval_accuracy"]
    arch = history["architecture"]
  metrics["cas_gap_to_real_subset"] = metrics["real_subset_accuracy"] - metrics["cas_accuracy"]
  metrics["augmentation_gain"] = metrics["real_subset_plus_generated_accuracy"] - metrics["real_subset_accuracy"]

  protocol = {
      "dataset": getattr(dataset, "name", None), "test_split": "test", "test_examples": int(len(test_y)),
      "num_samples": int(num_samples), "generated_labels": "balanced: sample i has label i mod K",
      "sample_batch_size": bs, "params_kind": getattr(model, "params_kind", None),
      "real_subset": int(real_subset), "real_subset_rule": "train split: " + subsets.describe_subset(
          real_subset, len(dataset.train), subset_seed, "cas_real_subset"),
      "real_train_examples": int(len(dataset.train)),
      "classifier": dict(arch.to_json(), recipe="gen_jax.eval.train_feature_net.train_classifier from scratch"),
      "num_steps": int(num_steps), "batch_size": int(batch_size), "learning_rate": float(learning_rate),
      "optimizer": "adam, linear warm-up + cosine decay to 1% of the lr; batches uniform with replacement",
      "classifier_seeds": seeds,
      "accuracy_reference": ("full_real_accuracy: same recipe and budget on the whole real train split"
                             if include_full_real else
                             "the stored feature classifier's test accuracy (classifiers/<dataset>/classifier.json)"),
      "metric": "top-1 accuracy (fraction) on the real test split",
  }
  return {"metrics": metrics, "protocol": protocol}
