"""Command-line plumbing shared by train.py and eval.py: flags in, a clear message out on bad input."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

from gen_jax import config as config_lib
from gen_jax.errors import GenJaxError

# Shown by main_guard on Ctrl-C outside the training loop (which handles its own first Ctrl-C): true for train.py
# (data loading, compiling, or a second Ctrl-C in the loop) as well as for eval.py and the other tools.
INTERRUPTED = ("interrupted (Ctrl-C); nothing already saved was lost: rerun the same command to start again "
               "(train.py resumes from the last checkpoint in its --workdir)")
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what a shell reports for a Ctrl-C'd command

_CONFIG_HELP = """\
config flags:
  --config=FILE[:VARIANT]   the config file (required), e.g. --config=configs/vae.py or --config=configs/vae.py:conv
                            (available: {available})
  --config.KEY=VALUE        override any field of the config (repeatable), e.g. --config.train.num_steps=2000;
                            unknown keys and ill-typed values are errors that name the key"""
_OVERRIDE_HELP = """\
config overrides:
  --config.KEY=VALUE        override a field of the run's saved config.json (repeatable),
                            e.g. --config.eval.num_samples=10000; unknown keys and ill-typed values are errors"""


def describe_config_flags(parser: argparse.ArgumentParser, need_config: bool) -> None:
  """Adds the --config=FILE[:VARIANT] / --config.KEY=VALUE flags (parsed by `parse`, not argparse) to the usage
  line and the --help text of `parser`."""
  usage = parser.format_usage().strip().removeprefix("usage:").strip()
  usage = usage.removeprefix(parser.prog).strip()
  extra = "--config=FILE[:VARIANT] [--config.KEY=VALUE ...]" if need_config else "[--config.KEY=VALUE ...]"
  parser.usage = f"%(prog)s {usage} {extra}"
  if need_config:
    names = sorted(p.name for p in config_lib.configs_dir().glob("*.py") if p.name not in ("__init__.py",
                                                                                               "default.py"))
    text = _CONFIG_HELP.format(available=", ".join(names))
  else:
    text = _OVERRIDE_HELP
  parser.epilog = f"{parser.epilog}\n\n{text}" if parser.epilog else text
  if parser.formatter_class is argparse.HelpFormatter:   # keep the epilog's line breaks
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def parse(argv: Sequence[str], parser: argparse.ArgumentParser, need_config: bool):
  """Returns (config or None, overrides, args). `--config=` and `--config.x=y` are handled here."""
  describe_config_flags(parser, need_config)
  spec, overrides, rest = config_lib.split_config_args(argv)
  args = parser.parse_args(rest)
  if spec is None:
    if need_config:
      parser.error("--config=configs/<name>.py is required (e.g. --config=configs/vae.py)")
    return None, overrides, args
  config = config_lib.load_config_file(spec)
  config_lib.apply_overrides(config, overrides)
  config_lib.validate_config(config)
  return config, overrides, args


def main_guard(fn: Callable[[], int | None]) -> None:
  """Runs `fn`, turning gen_jax's own errors into a one-paragraph message and exit code 2, and Ctrl-C into one
  line and exit code 130 (no traceback either way)."""
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  try:
    code = fn()
  except GenJaxError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  except KeyboardInterrupt:
    print(f"\n{INTERRUPTED}", file=sys.stderr, flush=True)
    exit_interrupted()
  sys.exit(code or 0)


def exit_interrupted() -> None:
  """Exits with code 130 at once. `os._exit` skips the interpreter's shutdown, which crashes (SIGSEGV) when the
  Ctrl-C lands while XLA is compiling (NOTES.md, "Measurements moved from docstrings")."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(EXIT_INTERRUPTED)
