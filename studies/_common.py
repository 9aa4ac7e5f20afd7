"""Pieces shared by the study files: one entry, the evaluation every run of a study gets, the training overrides,
and the builder of the grey-image (MNIST-like) studies.

A study file's `get_config(variant)` returns a ConfigDict (see gen_jax/jobs/study.py for every field).
"""
from __future__ import annotations

import ml_collections


def entry(name: str, config: str, *overrides: str) -> ml_collections.ConfigDict:
  """One model of a study: a name (used in paths and tables), a config `path:variant`, `key=value` overrides."""
  return ml_collections.ConfigDict({"name": name, "config": config, "overrides": tuple(overrides)})


def study(name: str, datasets: tuple[str, ...], seeds: tuple[int, ...], entries: tuple, rule: str,
          images: int = 0, seconds: float = 0.0, eval_overrides: tuple[str, ...] = (),
          train_overrides: tuple[str, ...] = (), description: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = name
  c.description = description
  c.datasets = tuple(datasets)
  c.seeds = tuple(int(s) for s in seeds)
  c.entries = tuple(entries)
  c.budget = ml_collections.ConfigDict({"rule": rule, "images": int(images), "seconds": float(seconds)})
  c.eval_overrides = tuple(eval_overrides)
  c.train_overrides = tuple(train_overrides)
  return c


# The evaluation every run of a CPU study gets: the sample-quality group at 10000 samples (the targets),
# path length, imputation and the likelihood at a CPU-sized k. 'cas' (conditional models only) and the full k=5000
# NLL are left to the accelerator variant.
CPU_EVAL = (
    "eval.suites=('likelihood','samples','latent','imputation')",
    "eval.num_samples=10000",
    "eval.num_importance_samples=100",
    "eval.num_examples=1000",
    "eval.ppl_samples=1000",
    "eval.imputation_examples=100",
    "eval.imputation_steps=50",
)
FULL_EVAL = (
    "eval.suites=('likelihood','samples','latent','imputation','cas')",
    "eval.num_samples=10000",
    "eval.num_importance_samples=1000",
    "eval.num_examples=10000",
    "eval.ppl_samples=2000",
    "eval.imputation_examples=500",
    "eval.imputation_steps=100",
)
# The training-time curve (Frechet distance of 2000 samples every 500 steps) and checkpoints often enough that an
# interrupted run loses little.
CPU_TRAIN = ("train.eval_every=500", "train.eval_samples=2000", "train.log_every=100", "train.checkpoint_every=1000",
             "train.keep_checkpoints=2", "train.sample_every=0")
FULL_TRAIN = ("train.eval_every=2000", "train.eval_samples=2000", "train.log_every=200",
              "train.checkpoint_every=5000", "train.keep_checkpoints=2", "train.sample_every=0")


def image_entries(width: int) -> tuple:
  """The five families of the MNIST / Fashion-MNIST studies, GAN networks at base width `width`."""
  w = (f"model.g_width={width}", f"model.d_width={width}")
  return (
      # conv VAE, discretized logistic likelihood (configs/vae.py:grey; the study sets data.name)
      entry("conv_vae", "configs/vae.py:grey"),
      # conditional VAE with the same conv body and likelihood
      entry("cvae", "configs/cvae.py", "model.arch=conv", "model.likelihood=logistic", "eval.chunk_size=4"),
      # DCGAN, non-saturating loss, EMA generator (configs/gan.py's default)
      entry("dcgan", "configs/gan.py", *w),
      # the stabilised GAN: hinge loss + spectral norm in D (one critic step per G step: same G steps as DCGAN)
      entry("hinge_sn", "configs/gan.py:hinge", *w),
      # VAE-GAN (Larsen et al. 2016)
      entry("vaegan", "configs/vaegan.py", *w,
            f"model.features=({width},{2 * width})"),
  )


# The grey-image studies (studies/mnist.py, fashion_mnist.py): training images per run at each variant.
GREY_IMAGES = {"cpu": 320_000, "full": 6_400_000}


def check_variant(file: str, variant: str, variants: tuple[str, ...] = ("cpu", "full")) -> str:
  """The variant a study file was asked for ('' = its first); ValueError (a ConfigError to the loader) otherwise."""
  variant = variant or variants[0]
  if variant not in variants:
    raise ValueError(f"{file}: unknown variant {variant!r}; use {' or '.join(variants)}")
  return variant


def grey_study(name: str, dataset: str, variant: str, description: str) -> ml_collections.ConfigDict:
  """A grey-image study: the five families of `image_entries`, seeds 0-2, equal training images seen. cpu: 320,000
  images, GAN widths 32, the CPU evaluation; full: 6,400,000 images, widths 64, the full evaluation."""
  full = check_variant(f"studies/{name}.py", variant) == "full"
  return study(
      name, datasets=(dataset,), seeds=(0, 1, 2),
      entries=image_entries(64 if full else 32), rule="images",
      images=GREY_IMAGES["full" if full else "cpu"],
      eval_overrides=FULL_EVAL if full else CPU_EVAL,
      train_overrides=FULL_TRAIN if full else CPU_TRAIN,
      description=description)
