"""Evaluate a trained run: python eval.py --workdir=runs/vae [--step=N] [--config.eval.num_importance_samples=5000]

Writes <workdir>/eval/metrics.json (every number with its protocol) and PNG grids in <workdir>/eval/.
"""
import argparse
import json
import sys

from gen_jax import cli


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="a run directory written by train.py")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest good one)")
  parser.add_argument("--no_progress", action="store_true")
  _, overrides, args = cli.parse(sys.argv[1:], parser, need_config=False)
  from gen_jax import parallel
  parallel.maybe_initialize_distributed()
  from gen_jax.eval.evaluate import evaluate_workdir
  report = evaluate_workdir(args.workdir, args.step, overrides, progress=not args.no_progress)
  print(json.dumps({"step": report["step"], "metrics": report["metrics"], "protocol": report["protocol"]}, indent=2))
  print(f"written: {args.workdir}/eval/metrics.json")
  return 0


if __name__ == "__main__":
  cli.main_guard(main)
