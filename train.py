"""Train a model: python train.py --config=configs/vae.py --workdir=runs/vae [--config.train.num_steps=2000]

Rerunning the same command resumes from the latest checkpoint in the workdir. --restart moves an earlier run's
files into <workdir>/restarted_<time>/ and starts over from step 0.
"""
import os
import signal
import sys


class _EarlyInterrupt:
  """SIGINT handler for the seconds before the training loop (imports, data loading, compiling), installed before
  JAX is imported. It records the Ctrl-C (`pending`, checked after the imports and at the loop's start), and once
  `armed` (after the imports) also raises KeyboardInterrupt. The record matters because a KeyboardInterrupt raised
  inside a garbage-collection callback (XLA's) is printed and swallowed, and training used to go on; not raising
  during the imports matters because one raised inside a half-imported extension module can crash the process."""

  def __init__(self):
    self.pending = False
    self.armed = False

  def __call__(self, signum, frame):
    if self.pending:   # a second Ctrl-C: out at once
      print("\ninterrupted (Ctrl-C)", file=sys.stderr, flush=True)
      os._exit(130)
    self.pending = True
    if self.armed:
      raise KeyboardInterrupt

  def check(self) -> None:
    if self.pending:
      raise KeyboardInterrupt


def _quiet_unraisable(handler: _EarlyInterrupt, previous):
  """After a Ctrl-C, drops the 'Exception ignored in: <function _xla_gc_callback>' report of a KeyboardInterrupt
  swallowed by a callback: the handler's record still stops the run."""
  def hook(unraisable):
    if handler.pending and isinstance(unraisable.exc_value, KeyboardInterrupt):
      return
    previous(unraisable)
  return hook


_handler = _EarlyInterrupt()
if __name__ == "__main__":
  signal.signal(signal.SIGINT, _handler)
  sys.unraisablehook = _quiet_unraisable(_handler, sys.unraisablehook)

import argparse  # noqa: E402

from gen_jax import cli  # noqa: E402 - does not import JAX


def _distributed() -> bool:
  return bool(os.environ.get("JAX_COORDINATOR_ADDRESS")) or os.environ.get("GEN_JAX_DISTRIBUTED", "0") in ("1", "true")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="run directory: checkpoints, metrics, images")
  parser.add_argument("--no_progress", action="store_true", help="no progress bar")
  parser.add_argument("--restart", action="store_true",
                      help="move the workdir's earlier run (checkpoints, metrics, ...) into a dated folder inside it "
                           "and start from step 0")
  _handler.check()
  config, _, args = cli.parse(sys.argv[1:], parser, need_config=True)
  lock = None
  if not _distributed():   # one process: check and lock the workdir before JAX is even imported
    from gen_jax.storage.lock import FolderLock, check_writable_folder
    check_writable_folder(args.workdir)
    lock = FolderLock(args.workdir, "train.py").acquire()
  from gen_jax import parallel
  parallel.maybe_initialize_distributed()
  from gen_jax.eval.suite import validate_eval_config
  from gen_jax.eval.training_eval import make_training_evaluator
  from gen_jax.train.loop import done_message, train
  _handler.armed = True   # imports done: from here a Ctrl-C also raises (data loading is Python)
  _handler.check()
  try:
    validate_eval_config(config)   # evaluation's own keys: wrong ones fail now, not after training
    summary = train(config, args.workdir, progress=not args.no_progress, restart=args.restart,
                    evaluator=make_training_evaluator)
  finally:
    if lock is not None:
      lock.release()
  print(done_message(summary))
  return 0


if __name__ == "__main__":
  cli.main_guard(main)
