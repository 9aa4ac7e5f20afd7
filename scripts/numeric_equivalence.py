"""Numeric fingerprint of every family: for refactors that must not change numbers.

  python scripts/numeric_equivalence.py --out /tmp/fp_before.json          # on the old commit (a git worktree)
  python scripts/numeric_equivalence.py --out /tmp/fp_after.json --restore_from /tmp/fp_before_runs
  python scripts/numeric_equivalence.py --compare /tmp/fp_before.json /tmp/fp_after.json

Trains a short run of each config below (20 steps, fixed seed) and records a sha256 of the final parameters and
the last logged metrics; then restores each run's checkpoint and records the evaluation operations (samples from
a fixed key, encoder means, reconstructions, ELBO, discriminator logits on 16 test images). With --restore_from,
the checkpoints written by the old code are restored by the new code, so checkpoint compatibility is checked too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import shutil
import sys

SPECS = ("configs/vae.py:runlocal", "configs/vae.py:conv,runlocal", "configs/cvae.py:runlocal",
         "configs/iwae.py:runlocal", "configs/gan.py:runlocal", "configs/gan.py:wgan_gp,runlocal",
         "configs/gan.py:hinge,resnet,runlocal", "configs/gan_toy.py:runlocal", "configs/vaegan.py:runlocal")
OVERRIDES = ("train.num_steps=20", "train.log_every=10", "train.eval_every=0", "train.sample_every=0",
             "train.checkpoint_every=20")


def _digest(array) -> list:
  import numpy as np
  a = np.asarray(array)
  return [hashlib.sha256(a.tobytes()).hexdigest()[:16], float(a.astype(np.float64).sum())]


def train_all(runs: pathlib.Path) -> dict:
  import jax
  import numpy as np
  from gen_jax import config as config_lib
  from gen_jax.train.loop import train
  out = {}
  for spec in SPECS:
    config = config_lib.apply_overrides(config_lib.load_config_file(spec), OVERRIDES)
    workdir = runs / spec.replace("/", "_").replace(":", "_").replace(",", "_")
    shutil.rmtree(workdir, ignore_errors=True)
    summary = train(config, str(workdir), progress=False)
    leaves = jax.tree.leaves(summary["state"].models)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    last = {k: round(v, 6) for k, v in sorted(rows[-1].items()) if isinstance(v, float) and k != "wall_seconds"
            and "per_sec" not in k}
    out[spec] = {"params": hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in leaves)).hexdigest()[:16],
                 "last_logged": last}
    print(spec, out[spec], flush=True)
  return out


def evaluate_all(runs: pathlib.Path) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from gen_jax import config as config_lib
  from gen_jax.eval.model_api import from_run
  from gen_jax.train.checkpoint import Checkpoints
  from gen_jax.train.loop import setup
  out = {}
  for workdir in sorted(p for p in runs.iterdir() if p.is_dir()):
    run = setup(config_lib.load_saved_config(workdir / "config.json"))
    state = Checkpoints(workdir).restore_latest_good(run.abstract_state())[0]
    model = from_run(run, state.models)
    key = jax.random.PRNGKey(7)
    r = {"sample": _digest(model.sample(key, 16))}
    test = getattr(run.dataset, "test", None)
    if test is not None:
      x = np.asarray(test.images[:16])
      x = model.model_input(jnp.asarray(x, jnp.float32) / (255.0 if x.dtype == np.uint8 else 1.0))
      labels = None if test.labels is None else jnp.asarray(test.labels[:16])
      if model.has_encoder:
        r["encode"] = _digest(model.encode(x, labels)[0])
        r["reconstruct"] = _digest(model.reconstruct(x, labels))
      if model.has_likelihood:
        r["elbo"] = _digest(model.elbo(x, labels, key))
      if model.has_discriminator:
        r["discriminator"] = _digest(model.discriminator(x, labels))
    out[workdir.name] = r
    print(workdir.name, r, flush=True)
  return out


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", help="where to write the fingerprint JSON")
  parser.add_argument("--runs", default="/tmp/gen_jax_fingerprint_runs", help="workdirs of the short runs")
  parser.add_argument("--restore_from", help="evaluate these workdirs (written by other code) instead of --runs")
  parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two fingerprint files")
  args = parser.parse_args()
  if args.compare:
    before, after = (json.loads(pathlib.Path(p).read_text()) for p in args.compare)
    diffs = [f"{part}/{k}" for part in ("train", "eval") for k in before[part]
             if before[part][k] != after[part].get(k)]
    print("identical" if not diffs else "DIFFERENT: " + ", ".join(diffs))
    return 1 if diffs else 0
  runs = pathlib.Path(args.runs)
  fingerprint = {"train": train_all(runs)}
  restore = pathlib.Path(args.restore_from) if args.restore_from else runs
  if args.restore_from:   # evaluate a copy: restoring may quarantine or rewrite files
    shutil.rmtree(runs.with_name(runs.name + "_restored"), ignore_errors=True)
    restore = pathlib.Path(shutil.copytree(restore, runs.with_name(runs.name + "_restored")))
  fingerprint["eval"] = evaluate_all(restore)
  from gen_jax.storage.atomic import write_json_atomic
  write_json_atomic(pathlib.Path(args.out), fingerprint)
  return 0


if __name__ == "__main__":
  sys.exit(main())
