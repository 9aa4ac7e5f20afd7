"""Evaluate trained runs, and compare them.

  python eval.py --workdir=runs/vae [--step=N] [--config.eval.num_samples=10000]
      the evaluation suite on one run: <workdir>/eval/metrics.json (every number with its protocol) + PNG grids
  python eval.py --compare runs/vae runs/gan runs/vaegan --out report/
      evaluates runs not yet evaluated, then writes report/index.html and report/report.md side by side
  python eval.py --anomaly --workdir=runs/vae [--classes=0,1] [--steps=2000]
      the one-class anomaly-detection protocol with the run's config: one model per normal class,
      AUROC per class and the mean, in <workdir>/anomaly/anomaly.json and anomaly.md
"""
import argparse
import json
import sys

from gen_jax import cli


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", help="a run directory written by train.py")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest good one)")
  parser.add_argument("--compare", nargs="+", metavar="RUN", help="run directories to compare side by side")
  parser.add_argument("--out", default="report", help="--compare: output folder (default: report/)")
  parser.add_argument("--anomaly", action="store_true", help="run the one-class anomaly protocol on --workdir's config")
  parser.add_argument("--classes", default=None, help="--anomaly: comma-separated normal classes (default: all)")
  parser.add_argument("--steps", type=int, default=None, help="--anomaly: training steps per class (default: config's)")
  parser.add_argument("--no_progress", action="store_true")
  _, overrides, args = cli.parse(sys.argv[1:], parser, need_config=False)
  from gen_jax import parallel
  parallel.maybe_initialize_distributed()
  progress = not args.no_progress
  if args.compare:
    from gen_jax.eval.report import build_report
    paths = build_report(args.compare, args.out, evaluate_missing=True, overrides=overrides, progress=progress)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0
  if not args.workdir:
    parser.error("give --workdir=RUN (evaluate or --anomaly) or --compare RUN [RUN ...]")
  if args.anomaly:
    from gen_jax.eval.anomaly import run_anomaly_protocol
    classes = None if args.classes is None else [int(c) for c in args.classes.split(",") if c.strip()]
    result = run_anomaly_protocol(args.workdir, classes=classes, num_steps=args.steps, progress=progress)
    print(json.dumps({"mean_auroc": result["mean"], "protocol": result["protocol"]}, indent=2))
    print(f"written: {args.workdir}/anomaly/anomaly.json")
    return 0
  from gen_jax.eval.evaluate import evaluate_workdir
  report = evaluate_workdir(args.workdir, args.step, overrides, progress=progress)
  print(json.dumps({"step": report["step"], "metrics": report["metrics"], "protocol": report["protocol"]}, indent=2))
  print(f"written: {args.workdir}/eval/metrics.json")
  return 0


if __name__ == "__main__":
  cli.main_guard(main)
