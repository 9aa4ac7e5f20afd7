"""Run a study: python -m gen_jax.study studies/mnist.py[:full] --out results/study_mnist

Trains every (entry, dataset, seed) of the study file that has no ledger record in <out>/ledger yet (each in its
own workdir under --workdirs; an interrupted run resumes), evaluates it with the study's one suite, records it, and
then writes the report (index.html, report.md, report.json) into --out from the ledger records alone.

  --only conv_vae,dcgan     only these entries (the report still covers every recorded run)
  --seeds 0,1               only these seeds (split a study over machines: each one runs some seeds)
  --aggregate_only          train nothing: rebuild the report from the records (no checkpoints needed)
  --status                  train nothing: each run's state (recorded, step s of N, not started) and the time left
  --ledger DIR              also read the records of another ledger folder (repeatable), e.g. another machine's
  --bootstrap               bootstrap intervals instead of Student t
  --set KEY=VALUE           a config override for every run, for machine-local keys such as data.data_dir
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from gen_jax import cli
from gen_jax.errors import ConfigError


def _csv(text: str | None) -> list[str] | None:
  return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m gen_jax.study", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("study", help="the study file, studies/<name>.py[:variant]")
  parser.add_argument("--out", required=True, help="report folder; ledger records go to <out>/ledger")
  parser.add_argument("--workdirs", default="runs/studies", help="root of the runs' workdirs (default runs/studies)")
  parser.add_argument("--only", help="comma-separated entry names to run")
  parser.add_argument("--seeds", help="comma-separated seeds to run")
  parser.add_argument("--aggregate_only", action="store_true", help="train nothing; rebuild the report")
  parser.add_argument("--status", action="store_true", help="train nothing; print where the study stands")
  parser.add_argument("--ledger", action="append", default=[], help="another ledger folder to read (repeatable)")
  parser.add_argument("--bootstrap", action="store_true", help="bootstrap confidence intervals instead of t")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
  parser.add_argument("--no_progress", action="store_true", help="no progress line")
  args = parser.parse_args(argv)
  from gen_jax.jobs import study as study_lib
  study = study_lib.load_study(args.study)
  try:
    seeds = [int(s) for s in _csv(args.seeds)] if args.seeds else None
  except ValueError:
    raise ConfigError(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. --seeds 0,1") from None
  out = pathlib.Path(args.out)
  note = None if args.aggregate_only else study_lib.commit_note(out, study_lib.git_state().get("commit"))
  if args.status:
    print(study_lib.status_text(study_lib.status(study, out, args.workdirs, only=_csv(args.only), seeds=seeds,
                                                 extra_overrides=args.set)), flush=True)
    if note:
      print(note, flush=True)
    return 0
  if note:
    print(note, flush=True)
  if not args.aggregate_only:
    from gen_jax import parallel
    parallel.maybe_initialize_distributed()
    result = study_lib.run_study(study, out, args.workdirs, only=_csv(args.only), seeds=seeds,
                                 extra_overrides=args.set, progress=not args.no_progress)
    busy = (f", {len(result['busy'])} left to another study process running them (run again when it is done)"
            if result["busy"] else "")
    print(f"{len(result['ran'])} runs trained and evaluated now, {len(result['skipped'])} already recorded{busy}.",
          flush=True)
  from gen_jax.report.study import build_study_report
  ledgers = [study_lib.ledger_dir(out)] + [pathlib.Path(d) for d in args.ledger]
  if not ledgers[0].is_dir():
    ledgers[0].mkdir(parents=True, exist_ok=True)
  paths = build_study_report(ledgers, out, study_lib.study_info(study), method="bootstrap" if args.bootstrap else "t")
  print(f"report: {paths['index_html']} (also report.md, report.json)", flush=True)
  return 0


if __name__ == "__main__":
  cli.main_guard(lambda: main(sys.argv[1:]))
