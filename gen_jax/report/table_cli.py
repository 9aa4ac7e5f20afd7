"""The shared command line of the results-table scripts: workdirs in, a Markdown table out."""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Callable

from gen_jax.storage.atomic import write_text_atomic


def read_eval_report(workdir: pathlib.Path) -> dict:
  """The `<workdir>/eval/metrics.json` that eval.py writes; a missing file says which command makes it."""
  path = workdir / "eval" / "metrics.json"
  if not path.exists():
    raise SystemExit(f"{path} not found: run `python eval.py --workdir={workdir}` first")
  return json.loads(path.read_text())


def group_protocol(report: dict, group: str) -> dict:
  """One evaluation group's protocol with the run-wide entries (seed, dataset) beside it.

  eval.py stores `protocol = {group: {...}, "seed": .., "dataset": ..}`; reports written before the
  suite grouped its protocols hold one flat dict, which is returned as it is.
  """
  protocol = report["protocol"]
  if group not in protocol:
    return protocol
  shared = {k: v for k, v in protocol.items() if not isinstance(v, dict)}
  return {**shared, **protocol[group]}


def main(doc: str, row_for: Callable[[pathlib.Path], dict], to_markdown: Callable[[list[dict]], str]) -> None:
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the table to this file")
  args = parser.parse_args()
  table = to_markdown([row_for(w) for w in args.workdirs])
  print(table)
  if args.out:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, table)
