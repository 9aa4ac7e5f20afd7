"""Evaluate trained runs, and compare them.

  python eval.py --workdir=runs/vae [--step=N] [--config.eval.num_samples=10000]
      the evaluation suite on one run, with the run's own config (<workdir>/config.json; change single keys with
      --config.eval.x=y): <workdir>/eval/metrics.json (every number with its protocol) + PNG grids. Evaluating only
      some groups (--config.eval.suites="('likelihood',)") of the same checkpoint keeps the other groups' results.
  python eval.py --compare runs/vae runs/gan runs/vaegan --out report/ [--no_evaluate]
      evaluates runs (or metric groups) not yet evaluated (with --no_evaluate: lists them as not evaluated),
      then writes report/index.html and report/report.md
  python eval.py --anomaly --workdir=runs/vae [--classes=0,1] [--steps=2000]
      the one-class anomaly-detection protocol with the run's config: one model per normal class,
      AUROC per class and the mean, in <workdir>/anomaly/anomaly.json and anomaly.md
"""
import argparse
import pathlib
import sys

from gen_jax import cli
from gen_jax import config as config_lib
from gen_jax.errors import ConfigError


def parse_classes(text: str | None) -> list[int] | None:
  """--classes=0,1 -> [0, 1]; None -> None (all classes); anything else is a ConfigError saying the form."""
  if text is None:
    return None
  parts = [t.strip() for t in text.split(",") if t.strip()]
  try:
    classes = [int(t) for t in parts]
  except ValueError:
    raise ConfigError(f"--classes={text} is not a list of class ids: give comma-separated integer class ids, "
                      "e.g. --classes=0,1 (or leave --classes out for every class)") from None
  if not classes:
    raise ConfigError("--classes is empty: give comma-separated integer class ids, e.g. --classes=0,1 (or leave "
                      "--classes out for every class)")
  return classes


def _flag_value(argv: list[str], flag: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(flag + "="):
      return arg.split("=", 1)[1]
    if arg == flag and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _refuse_config_file(argv: list[str], workdir: str | None) -> None:
  spec, _, _ = config_lib.split_config_args(argv)
  if spec is not None:
    where = f"{workdir}/config.json" if workdir else "<workdir>/config.json"
    raise ConfigError(f"--config={spec} is not used by eval.py: a run is evaluated with the config it was trained "
                      f"with, {where}. Drop --config={spec}; to change single keys, pass overrides such as "
                      "--config.eval.num_samples=1000 (--config.KEY=VALUE works for any key)")


def _anomaly_lines(result: dict, workdir: str) -> list[str]:
  per_class, mean = result.get("per_class") or {}, result.get("mean") or {}
  if not per_class:
    return ["anomaly detection: no class finished", f"written: {workdir}/anomaly/anomaly.json"]
  scores = list(mean)
  lines = [f"anomaly detection AUROC, mean over {len(per_class)} class(es): "
           + ", ".join(f"{s} {mean[s]:.4f}" for s in scores)]
  lines.append(f"per class ({' / '.join(scores)}): "
               + ", ".join(f"{c}: " + " / ".join(f"{v.get(s, float('nan')):.3f}" for s in scores)
                           for c, v in per_class.items()))
  if result.get("complete") is False:
    lines.append("INCOMPLETE: stopped early; rerun the same command to finish the other classes")
  lines.append(f"written: {workdir}/anomaly/anomaly.json (table: anomaly.md, protocol inside the JSON)")
  return lines


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", help="a run directory written by train.py")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest good one)")
  parser.add_argument("--compare", nargs="+", metavar="RUN", help="run directories to compare side by side")
  parser.add_argument("--out", default="report", help="--compare: output folder (default: report/)")
  parser.add_argument("--no_evaluate", action="store_true",
                      help="--compare: list runs without eval/metrics.json as not evaluated instead of evaluating")
  parser.add_argument("--anomaly", action="store_true", help="run the one-class anomaly protocol on --workdir's config")
  parser.add_argument("--classes", default=None, help="--anomaly: comma-separated normal classes (default: all)")
  parser.add_argument("--steps", type=int, default=None, help="--anomaly: training steps per class (default: config's)")
  parser.add_argument("--no_progress", action="store_true")
  argv = sys.argv[1:]
  _refuse_config_file(argv, _flag_value(argv, "--workdir"))
  _, overrides, args = cli.parse(argv, parser, need_config=False)
  if not args.anomaly and (args.classes is not None or args.steps is not None):
    parser.error("--classes and --steps belong to --anomaly; add --anomaly or leave them out")
  classes = parse_classes(args.classes) if args.anomaly else None   # before any slow work
  from gen_jax import parallel
  parallel.maybe_initialize_distributed()
  progress = not args.no_progress
  if args.compare:
    from gen_jax.report.build import build_report
    paths = build_report(args.compare, args.out, evaluate_missing=not args.no_evaluate, overrides=overrides, progress=progress)
    print(f"report: {paths['index_html']}\nMarkdown: {paths['report_md']}")
    return 0
  if not args.workdir:
    parser.error("give --workdir=RUN (evaluate or --anomaly) or --compare RUN [RUN ...]")
  if args.anomaly:
    from gen_jax.jobs.anomaly import run_anomaly_protocol
    result = run_anomaly_protocol(args.workdir, classes=classes, num_steps=args.steps, progress=progress)
    print("\n".join(_anomaly_lines(result, args.workdir)))
    return 0
  from gen_jax.eval.eval_summary import summary_lines
  from gen_jax.eval.evaluate import evaluate_workdir
  report = evaluate_workdir(args.workdir, args.step, overrides, progress=progress)
  print("\n".join(summary_lines(report, pathlib.Path(args.workdir) / "eval" / "metrics.json")))
  return 0


if __name__ == "__main__":
  cli.main_guard(main)
