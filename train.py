"""Train a model: python train.py --config=configs/vae.py --workdir=runs/vae [--config.train.num_steps=2000]

Rerunning the same command resumes from the latest checkpoint in the workdir.
"""
import argparse
import sys

from gen_jax import cli


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="run directory: checkpoints, metrics, images")
  parser.add_argument("--no_progress", action="store_true", help="no progress bar")
  config, _, args = cli.parse(sys.argv[1:], parser, need_config=True)
  from gen_jax import parallel
  parallel.maybe_initialize_distributed()
  from gen_jax.train.loop import done_message, train
  summary = train(config, args.workdir, progress=not args.no_progress)
  print(done_message(summary))
  return 0


if __name__ == "__main__":
  cli.main_guard(main)
