"""Adds the independent-pixel NLL baseline to study records measured before the likelihood group computed it.

The baseline (gen_jax/eval/groups/likelihood.py: independent_pixel_nll) depends on the data alone: the training
split and the test images the record's likelihood was measured on. So a record that lacks it can gain it without
re-evaluating the model: this job rebuilds the record's dataset from its config, checks that it is the same data
(source kind, as the study report compares them), draws the same seeded test subset, checks that the draw matches
the one the record describes, and writes `nll_independent` /
`nll_bits_per_dim_independent` into the record's metrics (and a `baseline` line, saying it was added later, into
its likelihood protocol). A conditional model gets the baseline fitted per class (its NLL is -log p(x|y)); its
record holding the unconditional one is updated. Records that have the right baseline, or no likelihood, are left
alone. Writes are atomic.

  python -m gen_jax.jobs.nll_baseline results/study_mnist/ledger results/study_fashion_mnist/ledger

Then re-aggregate each study (python -m gen_jax.study <study file> --out <its folder> --aggregate_only, or rerun it).
"""
from __future__ import annotations

import argparse
import pathlib
from typing import Sequence

import ml_collections

from gen_jax.errors import CheckpointError
from gen_jax.jobs.study import RECORD, git_state, read_record, write_record


def _subset_images(config: ml_collections.ConfigDict, protocol: dict, recorded_source: str):
  """(train images, train labels, the evaluated test images, their labels, dataset) of a record, checked against its
  data source (builder and kind: e.g. the CIFAR-10 JPEG copy is not the original release) and its description of
  the draw."""
  from gen_jax.data import load_dataset, subsets
  from gen_jax.data.dataset import source_kind
  from gen_jax.eval.groups.likelihood import describe_examples

  dataset = load_dataset(config.data)
  now, then = source_kind(dataset.source), source_kind(recorded_source)
  if now != then:
    raise CheckpointError(f"the data found now ({now}) is not the data the record was measured on ({then}). Fix: "
                          "point data_dir / GEN_JAX_DATA_DIR at that data, or re-evaluate the run.")
  split = getattr(dataset, protocol["split"])
  n = int(protocol["num_examples"])
  _, images, labels = subsets.subset(split, n, int(config.eval.subset_seed), "likelihood")
  described = describe_examples(split, n, config.eval)
  if described != protocol.get("examples"):
    raise CheckpointError(f"the test images drawn now ({described}) are not the ones the record describes "
                          f"({protocol.get('examples')}): the data or the subset code changed. Fix: re-evaluate "
                          "the run instead.")
  return dataset.train.images, dataset.train.labels, images, labels, dataset


def add_baseline(record_path: pathlib.Path, commit: str) -> str:
  """Adds the baseline to one record; returns what was done ('added ...', 'has it', 'no likelihood').

  A conditional model's record (capabilities.conditional) gets the per-class baseline; one that holds the
  unconditional baseline (measured or added before the per-class one existed) has it replaced."""
  from gen_jax.eval.groups.likelihood import BASELINE_PER_CLASS, independent_pixel_metrics
  from gen_jax.objectives.likelihoods import make_likelihood

  record = read_record(record_path)
  metrics = record["metrics"]["metrics"]
  protocol = record["metrics"].get("protocol", {}).get("likelihood")
  conditional = bool((record["metrics"].get("capabilities") or {}).get("conditional"))
  if not protocol or "nll" not in metrics or "likelihood" not in protocol:
    return "no likelihood"
  replacing = "nll_independent" in metrics
  if replacing and not (conditional and BASELINE_PER_CLASS not in str(protocol.get("baseline", ""))):
    return "has it"
  config = ml_collections.ConfigDict(record["config"])
  train, train_labels, test, test_labels, dataset = _subset_images(
      config, protocol, record["metrics"]["protocol"].get("dataset_source", ""))
  if conditional and (train_labels is None or test_labels is None):
    raise CheckpointError(f"{record_path}: a conditional model's record, but its data has no labels now")
  before = metrics.get("nll_bits_per_dim_independent")
  baseline, text = independent_pixel_metrics(train, test, make_likelihood(protocol["likelihood"]).levels,
                                             dataset.binarization or "none",
                                             train_labels=train_labels if conditional else None,
                                             test_labels=test_labels if conditional else None)
  metrics.update(baseline)
  protocol["baseline"] = (f"{text}; added to this record later from the data alone (python -m "
                          f"gen_jax.jobs.nll_baseline, commit {commit})")
  write_record(record_path, record)
  new = f"{metrics['nll_bits_per_dim_independent']:.4f} bits/dim (model {metrics['nll_bits_per_dim']:.4f})"
  if replacing:
    return f"replaced the unconditional baseline ({before:.4f} bits/dim) by the per-class one: {new}"
  return f"added{' (per class)' if conditional else ''}: {new}"


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m gen_jax.jobs.nll_baseline", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("ledgers", nargs="+", help="ledger folders (results/study_<name>/ledger)")
  args = p.parse_args(argv)
  commit = git_state().get("commit") or "unknown"
  for ledger in map(pathlib.Path, args.ledgers):
    records = sorted(ledger.glob(f"*/{RECORD}"))
    if not records:
      raise CheckpointError(f"no {RECORD} under {ledger}. Fix: pass a study's ledger folder "
                            "(results/study_<name>/ledger).")
    for path in records:
      print(f"{path.parent.name}: {add_baseline(path, commit)}", flush=True)
  return 0


if __name__ == "__main__":
  from gen_jax.cli import main_guard
  main_guard(lambda: main())
