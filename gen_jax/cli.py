"""Command-line plumbing shared by train.py and eval.py: flags in, a clear message out on bad input."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from gen_jax import config as config_lib
from gen_jax.errors import GenJaxError


def parse(argv: Sequence[str], parser: argparse.ArgumentParser, need_config: bool):
  """Returns (config or None, overrides, args). `--config=` and `--config.x=y` are handled here."""
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
  """Runs `fn`, turning gen_jax's own errors into a one-paragraph message and exit code 2."""
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  try:
    code = fn()
  except GenJaxError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  sys.exit(code or 0)
