"""Anomaly detection, one-class protocol: train on one class as "normal", score the whole test split.

For each class c of a labelled dataset, a copy of a run's config is trained with `data.classes=(c,)`
(the train split restricted to class c) into `<workdir>/anomaly/class_<c>/`; the final model then scores
every image of the test split, and the AUROC of each score is computed with anomaly = (label != c).
Scores (higher = more anomalous), each where the model has what it needs:

  recon_error        sum over pixels of (reconstruct(x) - x)^2 on the model input x   [encoder models]
  neg_elbo           -ELBO in nats (1 posterior sample, analytic KL)                  [VAE]
  neg_discriminator  -discriminator logit (D says "fake" = anomalous)                 [GAN, VAE-GAN]

Conditional models are conditioned on the normal class c for every test image: the true test label
would give the answer away. Results go to `<workdir>/anomaly/anomaly.json` (per class, mean over
classes, protocol) and `anomaly.md` (a table). Training resumes if interrupted; a class whose final
checkpoint exists is not trained again.

  python eval.py --anomaly --workdir=runs/vae [--classes=0,1] [--steps=2000] [--no_progress]
"""
from __future__ import annotations

import copy
import functools
import json
import pathlib
import time
import types
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config as config_lib
from gen_jax import parallel
from gen_jax.data import load_dataset
from gen_jax.errors import ConfigError, DatasetError
from gen_jax.storage.atomic import write_text_atomic
from gen_jax.storage.lock import FolderLock
from gen_jax.eval.metrics.auroc import auroc
from gen_jax.eval.batching import map_batches
from gen_jax.eval.model_api import EvalModel, from_run
from gen_jax.eval.training_eval import make_training_evaluator
from gen_jax.train import loop
from gen_jax.train.checkpoint import Checkpoints
from gen_jax.models.registry import build_family

SCORE_DESCRIPTIONS = {
    "recon_error": "sum over pixels of the squared error between the model input x (binarized for binarized "
                   "datasets) and reconstruct(x) = decoder mean at the encoder mean; encoder models",
    "neg_elbo": "-ELBO in nats, 1 posterior sample, analytic KL; VAE only",
    "neg_discriminator": "-discriminator logit in evaluation mode (higher = judged more fake); GAN and VAE-GAN",
}


def score_names(model: EvalModel) -> tuple[str, ...]:
  """The scores `anomaly_scores` gives for this model, in table order."""
  return tuple(name for name, flag in (("recon_error", model.has_encoder), ("neg_elbo", model.has_likelihood),
                                       ("neg_discriminator", model.has_discriminator)) if flag)


@functools.partial(jax.jit, static_argnums=0)
def _prepare(binarization: str | None, images_uint8: jax.Array, key: jax.Array, first_index: jax.Array):
  """uint8 batch -> (model input, key for the ELBO); keys are folded with the batch's first example index.

  Static on the binarization only (not on the model, which would keep its parameters alive in jit's cache);
  the conversion itself is EvalModel.model_input's, so there is one convention.
  """
  input_key, elbo_key = jax.random.split(jax.random.fold_in(key, first_index))
  x = images_uint8.astype(jnp.float32) / 255.0
  return EvalModel.model_input(types.SimpleNamespace(binarization=binarization), x, input_key), elbo_key


@jax.jit
def _squared_error(recon: jax.Array, x: jax.Array) -> jax.Array:
  return jnp.sum(jnp.reshape((recon - x) ** 2, (x.shape[0], -1)), axis=-1)


def anomaly_scores(model: EvalModel, images_uint8: np.ndarray, labels: np.ndarray | None, key: jax.Array,
                   batch_size: int, progress: str | None = None) -> dict[str, np.ndarray]:
  """Per-image anomaly scores (higher = more anomalous) of uint8 images [N, H, W, C], as float64 numpy [N].

  `labels` int32 [N] condition a conditional model (None: the model's default labels); unconditional models
  ignore them. Randomness (dynamic binarization, the ELBO's posterior sample) comes from `key` folded with each
  batch's first example index, so the scores are reproducible for a given (key, batch_size).
  """
  images_uint8 = np.asarray(images_uint8)
  if images_uint8.dtype != np.uint8 or images_uint8.ndim != 4 or tuple(images_uint8.shape[1:]) != model.data_shape:
    raise DatasetError(f"anomaly_scores needs uint8 images [N, {', '.join(map(str, model.data_shape))}] (the "
                       f"model's data shape); got {images_uint8.dtype} {images_uint8.shape}. Fix: pass the "
                       "dataset's uint8 split images (anomaly scores are defined for image datasets only).")
  names = score_names(model)
  index = np.arange(images_uint8.shape[0], dtype=np.int32)
  labels = None if labels is None else np.asarray(labels, np.int32)

  def score_batch(x_uint8, batch_labels, batch_index):
    x, elbo_key = _prepare(model.binarization, x_uint8, key, batch_index[0])
    out = {}
    if "recon_error" in names:
      out["recon_error"] = _squared_error(model.reconstruct(x, batch_labels), x)
    if "neg_elbo" in names:
      out["neg_elbo"] = -model.elbo(x, batch_labels, elbo_key)
    if "neg_discriminator" in names:
      out["neg_discriminator"] = -model.discriminator(x, batch_labels)
    return out

  scores = map_batches(score_batch, images_uint8, labels, index, batch_size=batch_size, progress=progress)
  return {name: np.asarray(scores[name], np.float64) for name in names}


def _class_config(base, c: int, num_steps: int | None):
  config = copy.deepcopy(base)
  with config.data.unlocked():
    config.data.classes = (int(c),)
  config.train.eval_every = 0   # the per-class models are scored by AUROC; no sample-quality curve
  if num_steps is not None:
    config.train.num_steps = int(num_steps)
  return config_lib.validate_config(config)


def _whole_dataset(config):
  """The run's dataset with every class; DatasetError if it has no labels (the protocol needs them)."""
  probe = copy.deepcopy(config)
  with probe.data.unlocked():
    probe.data.classes = ()
  dataset = load_dataset(probe.data)
  if dataset.num_classes is None or not hasattr(dataset, "test") or getattr(dataset.test, "labels", None) is None:
    raise DatasetError(f"the one-class anomaly protocol needs a labelled image dataset; data.name="
                       f"{dataset.name!r} has no stored labels. Fix: run it on mnist, fashion_mnist or a labelled "
                       "image_folder / npz run.")
  return dataset


def _trained_state(config, run: loop.Run, class_dir: pathlib.Path, progress: bool):
  """The final state of the class run in `class_dir`: restored if its last checkpoint is final, else trained."""
  num_steps = int(config.train.num_steps)
  ckpts = Checkpoints(class_dir, async_save=False)
  try:
    if ckpts.latest_step() == num_steps:
      restored = ckpts.restore_latest_good(run.abstract_state())
      if restored is not None and restored[2] == num_steps:
        return restored[0], num_steps, None
  finally:
    ckpts.close()
  result = loop.train(config, class_dir, mesh=run.mesh, family=run.family, progress=progress,
                      evaluator=make_training_evaluator)
  return result["state"], int(result["step"]), result["stopped_by"]


def _write_markdown(path: pathlib.Path, report: dict) -> None:
  names = list(report["mean"])
  proto = report["protocol"]
  lines = [f"# One-class anomaly detection: {proto['dataset']} ({proto['family']})", "",
           f"AUROC per normal class (train split restricted to that class, {proto['num_steps']} steps, seed "
           f"{proto['seed']}); test: {proto['test']}. Higher score = more anomalous; 0.5 = chance.", "",
           "| normal class | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for c, row in report["per_class"].items():
    lines.append(f"| {c} | " + " | ".join(f"{row[n]:.4f}" for n in names) + " |")
  lines.append("| **mean** | " + " | ".join(f"**{report['mean'][n]:.4f}**" for n in names) + " |")
  lines += ["", "Scores:"] + [f"- `{n}`: {proto['scores'][n]}" for n in names]
  if not report.get("complete", True):
    lines += ["", "INCOMPLETE: training was interrupted; rerun the same command to finish."]
  write_text_atomic(path, "\n".join(lines) + "\n")


def run_anomaly_protocol(workdir: str | pathlib.Path, classes: Sequence[int] | None = None,
                         num_steps: int | None = None, progress: bool = True) -> dict:
  """Runs the one-class protocol for `classes` (default: all) of the run in `workdir`; returns the report.

  Trains into `<workdir>/anomaly/class_<c>/` (resumable), writes `<workdir>/anomaly/anomaly.json` and
  `anomaly.md`. `num_steps` overrides the run's `train.num_steps` for every class.
  """
  workdir = pathlib.Path(workdir)
  base = config_lib.load_saved_config(workdir / "config.json")
  if "classes" not in base.data:
    with base.data.unlocked():
      base.data.classes = ()  # a run saved before the key existed
  if num_steps is not None and int(num_steps) < 1:
    raise ConfigError(f"num_steps must be >= 1 (got {num_steps}). Fix: e.g. --steps=2000, or leave it out to "
                      "use the run's train.num_steps.")
  whole = _whole_dataset(base)
  num_classes = int(whole.num_classes)
  classes = tuple(range(num_classes)) if classes is None else tuple(int(c) for c in classes)
  bad = [c for c in classes if not 0 <= c < num_classes]
  if not classes or bad:
    raise ConfigError(f"classes {list(classes)} are not valid for {base.data.name}: give one or more ids in "
                      f"[0, {num_classes}). Fix: e.g. --classes=0,1 or leave it out for all.")
  # One family object for every class (it depends on the data shape, classes and binarization only), so the
  # jitted evaluation functions, static on the family, compile once for the whole protocol.
  family = build_family(_class_config(base, classes[0], num_steps), whole)
  del whole
  out_dir = workdir / "anomaly"
  if not parallel.is_main_process():
    return _run_classes(workdir, base, family, classes, num_steps, progress)
  # One protocol per workdir at a time: a second one would train the same class folders and overwrite anomaly.json.
  with FolderLock(out_dir, "eval.py --anomaly"):
    return _run_classes(workdir, base, family, classes, num_steps, progress)


def _run_classes(workdir: pathlib.Path, base, family, classes: tuple[int, ...], num_steps: int | None,
                 progress: bool) -> dict:
  """Trains (or resumes) and scores one model per normal class; writes anomaly.json / anomaly.md."""
  out_dir = workdir / "anomaly"
  per_class: dict[str, dict[str, float]] = {}
  details: dict[str, dict] = {}
  stopped_by = None
  test_desc = dataset_desc = None
  names: tuple[str, ...] = ()
  for c in classes:
    config = _class_config(base, c, num_steps)
    class_dir = out_dir / f"class_{c}"
    run = loop.setup(config, family=family)
    t0 = time.time()
    state, step, stopped_by = _trained_state(config, run, class_dir, progress)
    if stopped_by:
      break
    if step != int(config.train.num_steps):
      print(f"WARNING: {class_dir} holds a run of {step} steps (more than the {config.train.num_steps} asked "
            "for); scoring it as it is. Use a new --workdir for a shorter protocol.", flush=True)
    model = from_run(run, state.models)
    test = run.dataset.test
    is_anomaly = test.labels != c
    if is_anomaly.all() or not is_anomaly.any():
      raise DatasetError(f"the test split of {run.dataset.name} ({len(test)} images) holds "
                         f"{'no' if is_anomaly.all() else 'only'} examples of class {c}, so AUROC is undefined. "
                         "Fix: use a larger test split (--config.data.num_test=0 for all).")
    cond = np.full(len(test), c, np.int32)  # condition on the normal class, never on the true test label
    scores = anomaly_scores(model, test.images, cond, run.keys["eval"], int(config.eval.batch_size),
                            progress=f"score class {c}" if progress else None)
    per_class[str(c)] = {name: auroc(s, is_anomaly) for name, s in scores.items()}
    details[str(c)] = {"step": step, "workdir": str(class_dir), "train_examples": len(run.dataset.train),
                       "test_anomalies": int(is_anomaly.sum()), "params": model.params_kind,
                       "seconds": time.time() - t0}
    names = tuple(scores)
    test_desc = f"{run.dataset.name} test split, {len(test)} images, anomaly = label != c"
    dataset_desc = run.dataset.source
    if progress:
      print(f"class {c}: " + ", ".join(f"{k} AUROC {v:.4f}" for k, v in per_class[str(c)].items()), flush=True)
  report = {
      "per_class": per_class,
      "mean": {n: float(np.mean([per_class[k][n] for k in per_class])) for n in names},
      "complete": stopped_by is None,
      "protocol": {
          "normal_class_training": "train split restricted to class c",
          "test": test_desc,
          "num_steps": int(num_steps if num_steps is not None else base.train.num_steps),
          "seed": int(base.seed),
          "scores": {n: SCORE_DESCRIPTIONS[n] for n in names},
          "conditioning": "conditional models get label c (the normal class) for every test image",
          "auroc": "Mann-Whitney U with average ranks for ties (gen_jax/eval/metrics/auroc.py)",
          "dataset": base.data.name,
          "dataset_source": dataset_desc,
          "family": family.name,
          "source_run": str(workdir),
          "classes": list(classes),
          "per_class_runs": details,
      },
  }
  if parallel.is_main_process():
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "anomaly.json", json.dumps(report, indent=2))
    if per_class:
      _write_markdown(out_dir / "anomaly.md", report)
  if stopped_by:
    print(f"Anomaly protocol stopped by {stopped_by}; rerun the same command to resume.", flush=True)
  return report
