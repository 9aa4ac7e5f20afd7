"""The shared command line of the results-table scripts: workdirs in, a Markdown table out."""
from __future__ import annotations

import argparse
import pathlib
from typing import Callable


def main(doc: str, row_for: Callable[[pathlib.Path], dict], to_markdown: Callable[[list[dict]], str]) -> None:
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the table to this file")
  args = parser.parse_args()
  table = to_markdown([row_for(w) for w in args.workdirs])
  print(table)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
