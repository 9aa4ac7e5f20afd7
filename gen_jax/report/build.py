"""Side-by-side comparison report of trained runs: which model to use for this data, with the evidence.

  python eval.py --compare runs/vae runs/gan runs/vaegan --out report/ [--no_evaluate] [--config.eval.x=y]

For each run directory (a `--workdir` of train.py) it reads `eval/metrics.json` (running the evaluation first
when it is missing, and evaluating the groups it lacks, with `--config.*` overrides), `anomaly/anomaly.json` if
present, `metrics.jsonl` and the image grids, and writes into the output folder:

  index.html   one self-contained page (inline CSS, no JavaScript, images in assets/ linked relatively):
               header (date, gen_jax commit, hardware), a mechanical "which to use" summary (best run per
               metric, wins per run, caveats where protocols or datasets differ), the metrics table (rows =
               metrics by group with the better direction, columns = runs, best per row in bold, real-data floors
               next to the values), the protocol of every metric group exactly as recorded, a training table,
               sample / reconstruction / interpolation grids side by side, training curves, anomaly tables and
               the definition of every metric shown;
  report.md    the same blocks in Markdown;
  report.json  every number gathered, for scripts.

Nothing is typed in by hand: every sentence of the summary is computed from the numbers. Reading the runs is
gen_jax/report/runs.py, the page layout gen_jax/report/render.py; this module decides the content.
"""
from __future__ import annotations

import datetime
import json
import math
import pathlib
import shutil
import subprocess
import sys
from typing import Sequence

from gen_jax.errors import GenJaxError
from gen_jax.storage.atomic import write_text_atomic
from gen_jax.report import curves as curves_lib
from gen_jax.report import ranking
from gen_jax.eval import metric_specs as specs
from gen_jax.report.render import (Block, BulletList, Cell, Figure, Figures, Heading, Paragraph, Table,
                                        to_html, to_markdown)
from gen_jax.report.runs import (EXACT_DATA_GROUPS, IMAGE_KINDS, RunInfo, collect_images,
                                      dataset_groups, eval_fix, expected_groups, is_unmeasured_key, load_run,
                                      metric_table, missing_groups, num, protocol_groups, read_json, run_names, slug,
                                      training_summary)

TITLE = "gen_jax: comparison of trained models"


def _evaluate(run: RunInfo, overrides: Sequence[str], progress: bool) -> None:
  from gen_jax.eval.evaluate import evaluate_workdir  # imports JAX: only when something needs evaluating
  if progress:
    print(f"evaluating {run.path} (no eval/metrics.json yet) ...", flush=True)
  try:
    result = evaluate_workdir(run.path, overrides=overrides, progress=progress)
  except GenJaxError as e:
    run.status = f"not evaluated: {e}"
    print(f"warning: {run.path} could not be evaluated: {e}", file=sys.stderr, flush=True)
    return
  saved = run.path / "eval" / "metrics.json"
  if saved.is_file():
    run.eval = read_json(saved, "eval results", eval_fix(run.path))
  else:  # not the main process of a multi-host run: only process 0 writes
    run.eval = json.loads(json.dumps(result, default=str))
  run.status = "evaluated now" + (f" (overrides: {', '.join(overrides)})" if overrides else "")


NO_METRICS_FILE = "not evaluated (no eval/metrics.json)"

# The README's quick look: fewer importance samples and imputation images (key, value, the eval.suites group).
QUICK_LOOK = (("eval.num_importance_samples", 100, "likelihood"), ("eval.imputation_examples", 50, "imputation"))
# The README's CIFAR-10 quick look: on colour data the classifier passes and imputation dominate, not the NLL.
QUICK_LOOK_COLOUR = (("eval.num_samples", 1000, "samples"), ("eval.ppl_samples", 200, "latent"),
                     ("eval.imputation_examples", 20, "imputation"))
COLOUR_DATASETS = ("cifar10",)


def evaluate_hint(run: RunInfo) -> str:
  """How to evaluate a run that has no metrics.json: the full protocol (slow on a CPU: tens of minutes for colour
  data) and the README's quick look, with the flags of the groups its config evaluates."""
  full = f"python eval.py --workdir={run.path}"
  quick = QUICK_LOOK_COLOUR if (run.config.get("data") or {}).get("name") in COLOUR_DATASETS else QUICK_LOOK
  suites = expected_groups(run) or [group for _, _, group in quick]
  flags = " ".join(f"--config.{key}={value}" for key, value, group in quick if group in suites)
  text = f"To evaluate it: {full} (the full protocol: slow on a CPU, tens of minutes for colour data)"
  return text + (f"; for a quick look: {full} {flags}" if flags else "")


def fill_command(run: RunInfo, groups: Sequence[str]) -> str:
  """The eval.py command that evaluates `groups` of a run at the step already in its metrics.json (merged in)."""
  step = (run.eval or {}).get("step")
  return (f"python eval.py --workdir={run.path}" + (f" --step={step}" if isinstance(step, int) else "")
          + f' --config.eval.suites="{tuple(groups)!r}"')


def _fill_missing_groups(run: RunInfo, overrides: Sequence[str], progress: bool) -> None:
  """Evaluates the groups a run's metrics.json lacks, at its recorded step: evaluate_workdir merges them into the
  file (same checkpoint). On failure the run keeps what it has and its caveat names the command."""
  from gen_jax.eval.evaluate import evaluate_workdir  # imports JAX: only when something needs evaluating
  groups = list(run.missing_groups)
  step = run.eval.get("step")
  print(f"note: {run.path}/eval/metrics.json has no {', '.join(groups)} results; evaluating them now "
        f"(step {step}) ...", file=sys.stderr, flush=True)
  try:
    evaluate_workdir(run.path, step if isinstance(step, int) else None,
                     list(overrides) + [f"eval.suites={tuple(groups)!r}"], progress=progress)
  except GenJaxError as e:
    print(f"warning: {run.path}: the missing groups could not be evaluated: {e}\n  to fill them later: "
          f"{fill_command(run, groups)}", file=sys.stderr, flush=True)
    return
  saved = run.path / "eval" / "metrics.json"
  if saved.is_file():
    run.eval = read_json(saved, "eval results", eval_fix(run.path))
  run.missing_groups = missing_groups(run, overrides)
  run.status = f"evaluated; {', '.join(groups)} evaluated now"


def _duration(seconds: float | None) -> str:
  if seconds is None or not math.isfinite(seconds):
    return "—"
  if seconds < 120:
    return f"{seconds:.0f} s"
  if seconds < 7200:
    return f"{seconds / 60:.1f} min"
  return f"{seconds / 3600:.2f} h"


def _git_commit() -> str:
  root = pathlib.Path(__file__).resolve().parents[2]
  try:
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          timeout=20, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=20).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown (not a git checkout)"
  return head + (" with uncommitted changes" if dirty else "")


# --------------------------------------------------------------------------- report content


def _run_header(runs: Sequence[RunInfo]) -> list[Cell]:
  return [Cell(r.name, title=str(r.path)) for r in runs]


def _finite(x: float | None) -> bool:
  return x is not None and math.isfinite(x)


def _summary_blocks(runs: Sequence[RunInfo], table: list[dict], protocols: dict[str, list[dict | None]]) -> list:
  blocks: list[Block] = [Heading(2, "Which to use: the numbers, mechanically", "summary")]
  entries = [(row, data, members, best) for row in table for data, members, best in row["ranked"]
             if not specs.spec_or_unknown(row["name"]).derived]
  if not entries:
    blocks.append(Paragraph(["Nothing to rank: no metric has differing values from two or more runs on the "
                             "same data."]))
  else:
    blocks.append(Paragraph(["Best run per metric, ranked only among runs on the same data (column 'data'; "
                             "ties listed together; floors, unranked metrics and restatements of another metric "
                             "such as bits/dim left out). Better = the arrow of the metrics table; runs marked "
                             "'†' in the metrics table (worse than a trivial baseline, or failing a gate) are "
                             "never best. Computed from the numbers below, nothing else."], note=True))
    rows = [[_label(row), data, Cell(", ".join(runs[i].name for i in best), bold=True), row["cells"][best[0]],
             str(sum(_finite(row["values"][i]) for i in members))] for row, data, members, best in entries]
    blocks.append(Table(["metric", "data", "best run", "its value", "runs with a value"], rows))
    wins = []
    for i, run in enumerate(runs):
      won = sum(i in best for _, _, _, best in entries)
      took_part = sum(i in members and _finite(row["values"][i]) for row, _, members, _ in entries)
      wins.append((won, took_part, run.name))
    wins.sort(key=lambda w: (-w[0], w[2]))
    blocks.append(BulletList([[Cell(name, bold=True), f": best on {won} of the {took} ranked metrics it has"]
                              for won, took, name in wins]))
  caveats = _caveats(runs, protocols)
  if caveats:
    blocks += [Paragraph([Cell("Read with care:", bold=True)]), BulletList([[c] for c in caveats])]
  return blocks


def _caveats(runs: Sequence[RunInfo], protocols: dict[str, list[dict | None]]) -> list[str]:
  """Mechanical warnings: several datasets (or feature networks), runs without results (a run not evaluated yet is
  one of these, not another dataset), protocols that differ between runs on the same data (a key recorded by two
  or more of them with different values)."""
  out = []
  base = dataset_groups(runs, "samples")
  # Runs not evaluated yet (listed below, with the command that evaluates them) or whose samples group was skipped
  # are no other data.
  differ = [key for key in base if not is_unmeasured_key(key)]
  if len(differ) > 1:
    what = "datasets or feature networks" if any(", features " in key for key in differ) else "datasets"
    out.append(f"the runs use {len(differ)} different {what} ({'; '.join(differ)}): they are ranked only "
               "against runs on the same data")
  for data, members in base.items():
    kinds = sorted({runs[i].dataset for i in members})
    if len(kinds) > 1:
      out.append(f"{' and '.join(kinds)} are ranked together on sample-based metrics (same images, same real "
                 f"reference) but apart on {', '.join(g for g in EXACT_DATA_GROUPS if g != 'other')} metrics")
  for run in runs:
    if run.eval is None:
      out.append(f"{run.name}: {run.status}; its column is empty" + (f". {evaluate_hint(run)}" if run.status ==
                                                                       NO_METRICS_FILE else ""))
    elif run.missing_groups:
      out.append(f"{run.name}: eval/metrics.json has no {', '.join(run.missing_groups)} results (its config asks for "
                 f"them); their rows are empty for it. Fill them: {fill_command(run, run.missing_groups)}")
    if run.eval is not None and "nll" in run.metrics and "nll_independent" not in run.metrics:
      out.append(f"{run.name}: its NLL was measured before the independent-pixels baseline existed, so it is ranked "
                 f"without that check. Measure it: {fill_command(run, ['likelihood'])}")
    if run.anomaly is not None and run.anomaly.get("complete") is False:
      out.append(f"{run.name}: anomaly/anomaly.json is incomplete (the per-class runs were stopped early); its "
                 "means cover only the classes listed")
  for group, per_run in protocols.items():
    partitions = dataset_groups(runs, "likelihood" if group == "general" else group)
    for data, members in partitions.items():
      present = [per_run[i] for i in members if per_run[i] is not None]
      if len(present) < 2:
        continue
      keys = sorted(set().union(*(p.keys() for p in present)))
      differ = [k for k in keys
                if len({json.dumps(p[k], sort_keys=True, default=str) for p in present if k in p}) > 1]
      if differ:
        where = f" on {data}" if len(partitions) > 1 else ""
        out.append(f"the '{group}' protocol differs between runs{where} in: {', '.join(differ)} (see Protocols)")
  return out


def _label(row: dict) -> Cell:
  unit = f" ({row['unit']})" if row["unit"] and row["unit"] not in ("count", "fraction", "ratio") else ""
  arrow = f" {row['arrow']}" if row["arrow"] else ""
  return Cell(f"{row['label']}{unit}{arrow}", title=f"{row['name']}: {row['meaning']}")


def _metrics_blocks(runs: Sequence[RunInfo], table: list[dict]) -> list:
  blocks: list[Block] = [Heading(2, "Metrics", "metrics")]
  if not table:
    return blocks + [Paragraph(["No run has evaluation results."])]
  blocks.append(Paragraph(["↑ higher is better, ↓ lower is better, →1 closer to 1 is better; unmarked rows are "
                           "not ranked. Bold: best of the row among runs on the same data. '(floor x)': the same "
                           "metric for real test data against real training data, i.e. what real data scores "
                           "under this protocol; '(real x)': the score of real test images; '± s': standard "
                           "deviation over subsets ('± n/a': a single subset, no spread; see the protocol). '—': "
                           "not measured for that run."], note=True))
  rows, sections, group = [[Cell("dataset")] + [Cell(r.dataset) for r in runs]], set(), None
  for row in table:
    if row["group"] != group:
      group = row["group"]
      sections.add(len(rows))
      rows.append([Cell(specs.GROUPS.get(group, group))] + [""] * len(runs))
    marked = row.get("marked", {})
    rows.append([_label(row)] + [Cell(text + (" †" if i in marked else ""), bold=i in row["best"],
                                      title=marked.get(i, "")) for i, text in enumerate(row["cells"])])
  blocks.append(Table([Cell("metric")] + _run_header(runs), rows, section_rows=frozenset(sections)))
  marks = [f"{runs[i].name}, {row['label']}: {why}"
           for row in table for i, why in sorted(row.get("marked", {}).items())]
  rules = ranking.rule_lines(row["name"] for row in table)
  blocks.append(Paragraph(["Ranking rule: " + " ".join(rules)
                           + (" '†': marked, not ranked: " + "; ".join(marks) + "." if marks else "")], note=True))
  return blocks


def _protocol_blocks(runs: Sequence[RunInfo], protocols: dict[str, list[dict | None]]) -> list:
  blocks: list[Block] = [Heading(2, "Protocols", "protocols"),
                         Paragraph(["How each group of numbers was measured, exactly as each run's "
                                    "eval/metrics.json records it ('—': not recorded for that run)."], note=True)]
  for group, per_run in protocols.items():
    title = "General (seed, data)" if group == "general" else specs.GROUPS.get(group, group)
    keys = []
    for p in per_run:
      keys += [k for k in (p or {}) if k not in keys]
    rows = [[Cell(k)] + [Cell("—" if p is None or k not in p else _protocol_text(p[k])) for p in per_run]
            for k in keys]
    blocks += [Heading(3, title), Table([Cell("recorded")] + _run_header(runs), rows)]
  anomaly = [(r.name, r.anomaly.get("protocol")) for r in runs if r.anomaly and r.anomaly.get("protocol")]
  for name, protocol in anomaly:
    blocks += [Heading(3, f"Anomaly detection, {name}"),
               BulletList([[Cell(str(k), bold=True), f": {_protocol_text(v)}"] for k, v in protocol.items()])]
  return blocks


def _protocol_text(value) -> str:
  """A recorded protocol value as text: strings verbatim, nested dicts as 'key: value; ...', the rest as JSON."""
  if isinstance(value, str):
    return value
  if isinstance(value, dict):
    return "; ".join(f"{k}: {_protocol_text(v)}" for k, v in value.items())
  return json.dumps(value, default=str)


def _training_blocks(runs: Sequence[RunInfo], summaries: list[dict]) -> list:
  fields = (("family", "family", str), ("dataset", "dataset", str), ("arch", "architecture", str),
            ("objective", "objective / loss", str), ("params", "parameters", _int_text),
            ("batch_size", "batch size", _int_text), ("steps", "steps", _int_text),
            ("wall_seconds", "training wall time", _duration),
            ("median_steps_per_sec", "median steps/s", _rate_text),
            ("median_examples_per_sec", "median examples/s", _rate_text),
            ("device", "training devices", str),
            ("during_training", "sample quality during training", str),
            ("eval_wall_seconds", "evaluation wall time", _duration),
            ("status", "evaluation", str))
  rows = [[Cell(label)] + [Cell(fmt(s[key]) if s[key] is not None else "—") for s in summaries]
          for key, label, fmt in fields]
  for row, (key, _, _) in zip(rows, fields):
    if key == "params":   # the total, then each network's share
      row[1:] = [Cell(_params_text(s)) for s in summaries]
  return [Heading(2, "Training", "training"),
          Paragraph(["Steps/s and examples/s: median over the logged intervals of metrics.jsonl (the first "
                     "interval includes compilation). Wall time and devices as recorded by the last checkpoint. "
                     "Sample quality during training: the curve of train.eval_every (protocol in the run's "
                     "training_eval.json), its last value and its best."],
                    note=True),
          Table([Cell("")] + _run_header(runs), rows)]


def _params_text(summary: dict) -> str:
  """'1,234,567 (encoder 600,000, decoder 634,567)': trainable parameters, total and per network."""
  total, per = summary.get("params"), summary.get("params_per_network") or {}
  if total is None:
    return "—"
  text = _int_text(total)
  if len(per) > 1:
    text += " (" + ", ".join(f"{name} {_int_text(n)}" for name, n in per.items()) + ")"
  return text


def _int_text(v) -> str:
  return f"{int(v):,}" if isinstance(v, (int, float)) and math.isfinite(v) else str(v)


def _rate_text(v) -> str:
  if not isinstance(v, (int, float)) or not math.isfinite(v):
    return str(v)
  return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _image_blocks(runs: Sequence[RunInfo], images: list[dict]) -> list:
  blocks: list[Block] = [Heading(2, "Images", "images")]
  any_image = False
  for kind, title in IMAGE_KINDS:
    if not any(kind in im for im in images):
      continue
    any_image = True
    figs = [Figure(im[kind]["path"] if kind in im else None,
                   f"{run.name} ({im[kind]['source']})" if kind in im else f"{run.name} (none)")
            for run, im in zip(runs, images)]
    blocks += [Heading(3, title), Figures(figs)]
  if not any_image:
    blocks.append(Paragraph(["No run has image grids."]))
  return blocks


def _curve_blocks(runs: Sequence[RunInfo], run_curves: list[dict], compare: dict[str, dict[str, str]]) -> list:
  blocks: list[Block] = [Heading(2, "Training curves", "curves"),
                         Paragraph(["From each run's metrics.jsonl (training split, as logged every log_every "
                                    "steps; a resumed run keeps the last value of a step logged twice). 'During "
                                    "training': sample quality every train.eval_every steps, protocol in the run's "
                                    "training_eval.json (fewer samples than the table above: compare along a run and "
                                    "between runs, not with the table)."],
                                   note=True)]
  for title, paths in compare.items():
    blocks += [Heading(3, f"Side by side: {title}"), Figures([Figure(path, key) for key, path in paths.items()])]
  for run, paths in zip(runs, run_curves):
    blocks.append(Heading(3, run.name))
    if paths:
      blocks.append(Figures([Figure(path, f"{run.name}: {name}") for name, path in paths.items()]))
    else:
      blocks.append(Paragraph(["No metrics.jsonl rows."], note=True))
  return blocks


def _anomaly_blocks(runs: Sequence[RunInfo]) -> list:
  with_anomaly = [r for r in runs if r.anomaly and r.anomaly.get("per_class")]
  if not with_anomaly:
    return []
  blocks: list[Block] = [Heading(2, "Anomaly detection (AUROC)", "anomaly"),
                         Paragraph(["Per held-out class: AUROC of each anomaly score; bold: best score of the row."],
                                   note=True)]
  for run in with_anomaly:
    per_class = run.anomaly["per_class"]
    scores = []
    for v in per_class.values():
      scores += [s for s in v if s not in scores]
    classes = sorted(per_class, key=lambda c: (not str(c).isdigit(), int(c) if str(c).isdigit() else 0, str(c)))
    rows = []
    for label, values in [(str(c), per_class[c]) for c in classes] + [("mean", run.anomaly.get("mean") or {})]:
      nums = [num(values.get(s)) for s in scores]
      best = specs.best_runs("anomaly_auroc_x", nums)
      rows.append([Cell(label, bold=label == "mean")] +
                  [Cell(specs.format_value("anomaly_auroc_x", values.get(s)), bold=j in best)
                   for j, s in enumerate(scores)])
    blocks += [Heading(3, run.name), Table([Cell("class")] + [Cell(s) for s in scores], rows)]
  return blocks


def _definitions_block(table: list[dict]) -> list:
  if not table:
    return []
  items = [[Cell(row["name"], bold=True), f" ({row['label']}"
            + (f", {row['unit']}" if row["unit"] else "") + f"): {row['meaning']}"] for row in table]
  return [Heading(2, "Metric definitions", "definitions"), BulletList(items)]


def _header_blocks(runs: Sequence[RunInfo], summaries: list[dict], generated: str, commit: str) -> list:
  train_hw = sorted({s["device"] for s in summaries if s["device"]})
  eval_hw = sorted({f"{h.get('num_devices')}x {h.get('device_kind')} ({h.get('platform')}, jax "
                    f"{h.get('jax_version')})" for s in summaries if (h := s["eval_hardware"])})
  return [
      Heading(1, TITLE),
      BulletList([["Generated: ", generated], ["gen_jax commit: ", commit],
                  ["Runs: ", ", ".join(f"{r.name} ({r.path})" for r in runs)],
                  ["Training hardware: ", "; ".join(train_hw) or "not recorded"],
                  ["Evaluation hardware: ", "; ".join(eval_hw) or "not recorded"]]),
  ]


# --------------------------------------------------------------------------- entry point


def build_report(run_dirs: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path, evaluate_missing: bool = True,
                 overrides: Sequence[str] = (), progress: bool = True) -> dict[str, pathlib.Path]:
  """Writes out_dir/index.html, report.md, report.json (+ assets/). Returns their paths.

  A run without eval/metrics.json is evaluated first (`evaluate_workdir(run, overrides=overrides)`) when
  `evaluate_missing`, else listed as not evaluated. So is a run whose metrics.json lacks groups its config (with
  `overrides`) asks for (an earlier partial evaluation, e.g. --config.eval.suites="('likelihood',)"): the missing
  groups are evaluated at the recorded step and merged into the file; without `evaluate_missing` a note and a
  caveat name them with the eval.py command that fills them.
  """
  if not run_dirs:
    raise GenJaxError("no run directories given; pass one or more --workdir folders of train.py, "
                      "e.g. python eval.py --compare runs/vae runs/gan --out report/")
  paths = [pathlib.Path(p) for p in run_dirs]
  runs = [load_run(p, n) for p, n in zip(paths, run_names(paths))]  # all checked before any slow work
  out_dir = pathlib.Path(out_dir)
  for run in runs:
    if out_dir.resolve() == run.path.resolve():
      raise GenJaxError(f"--out {out_dir} is the run directory {run.path}; choose a separate folder, e.g. report/")
  for run in runs:
    if run.eval is None:
      if evaluate_missing:
        _evaluate(run, overrides, progress)
      else:
        run.status = NO_METRICS_FILE
    if run.eval is not None:
      run.missing_groups = missing_groups(run, overrides)
      if run.missing_groups and evaluate_missing:
        _fill_missing_groups(run, overrides, progress)
      elif run.missing_groups:
        print(f"note: {run.name} ({run.path}): eval/metrics.json has no {', '.join(run.missing_groups)} results; "
              f"to fill them: {fill_command(run, run.missing_groups)}", file=sys.stderr, flush=True)

  out_dir.mkdir(parents=True, exist_ok=True)
  assets = out_dir / "assets"
  if assets.is_dir() and (out_dir / "report.json").is_file():
    shutil.rmtree(assets)  # an earlier report's images: stale ones must not linger
  for i, run in enumerate(runs):
    run.asset_dir = f"assets/{i + 1:02d}_{slug(run.name)}"
    (out_dir / run.asset_dir).mkdir(parents=True, exist_ok=True)

  table = metric_table(runs)
  summaries = [training_summary(r) for r in runs]
  protocols: dict[str, list[dict | None]] = {}
  for i, run in enumerate(runs):
    for group, protocol in protocol_groups(run.eval).items():
      protocols.setdefault(group, [None] * len(runs))[i] = protocol
  order = ["general"] + list(specs.GROUPS)
  protocols = dict(sorted(protocols.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0])))
  images = [collect_images(r, out_dir) for r in runs]
  if progress:
    print(f"plotting training curves of {len(runs)} runs ...", flush=True)
  run_curves = []
  for run in runs:
    drawn = curves_lib.plot_run_curves(run.rows, out_dir / run.asset_dir / "curves", title=run.name)
    # Sample quality measured during training (config.train.eval_every: rows with split 'eval').
    during = curves_lib.plot_run_curves(run.rows, out_dir / run.asset_dir / "curves_eval",
                                        title=f"{run.name}, measured during training", split="eval")
    drawn.update({f"{name} (during training)": path for name, path in during.items()})
    run_curves.append(_relative(drawn, out_dir))
  compare = _compare_curves(runs, out_dir)

  generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  commit = _git_commit()
  blocks = (_header_blocks(runs, summaries, generated, commit) + _summary_blocks(runs, table, protocols)
            + _metrics_blocks(runs, table) + _protocol_blocks(runs, protocols) + _training_blocks(runs, summaries)
            + _image_blocks(runs, images) + _curve_blocks(runs, run_curves, compare) + _anomaly_blocks(runs)
            + _definitions_block(table))
  index = out_dir / "index.html"
  write_text_atomic(index, to_html(TITLE, blocks))
  markdown = out_dir / "report.md"
  write_text_atomic(markdown, to_markdown(TITLE, blocks))
  data = {
      "generated": generated, "commit": commit,
      "runs": [{"name": r.name, "path": str(r.path), "status": r.status, "family": r.family,
                "metrics": r.metrics, "protocol": (r.eval or {}).get("protocol"), "training": s,
                "anomaly": r.anomaly, "images": im, "curves": c, "step": (r.eval or {}).get("step")}
               for r, s, im, c in zip(runs, summaries, images, run_curves)],
      "table": [{k: row[k] for k in ("name", "group", "label", "unit", "direction", "target", "cells")}
                | {"values": dict(zip((r.name for r in runs), row["values"])),
                   "best": {data: [runs[i].name for i in best] for data, _, best in row["ranked"]},
                   "marked": {runs[i].name: why for i, why in row.get("marked", {}).items()}}
                for row in table],
      "compare_curves": compare,
  }
  report_json = out_dir / "report.json"
  write_text_atomic(report_json, json.dumps(_json_safe(data), indent=2, default=str))
  return {"index_html": index, "report_md": markdown, "report_json": report_json, "assets": assets}


def _relative(paths: dict[str, pathlib.Path], root: pathlib.Path) -> dict[str, str]:
  return {k: p.relative_to(root).as_posix() for k, p in paths.items()}


def _compare_curves(runs: Sequence[RunInfo], out_dir: pathlib.Path) -> dict[str, dict[str, str]]:
  """{title: {metric: relative path}}: throughput of every run; other training metrics only among runs on the
  same data (a discriminator loss on a 2-D toy set says nothing about one on MNIST)."""
  out = {}
  if len(runs) > 1:
    drawn = curves_lib.plot_comparison({r.name: r.rows for r in runs}, out_dir / "assets" / "compare" / "all",
                                       keys=curves_lib.THROUGHPUT_KEYS)
    if drawn:
      out["Throughput, all runs"] = _relative(drawn, out_dir)
  same_data: dict[str, list[int]] = {}   # training curves compare by the data trained on, whatever was evaluated
  for i, run in enumerate(runs):
    same_data.setdefault(run.dataset, []).append(i)
  for n, (data, members) in enumerate(same_data.items()):
    if len(members) < 2:
      continue
    drawn = curves_lib.plot_comparison({runs[i].name: runs[i].rows for i in members},
                                       out_dir / "assets" / "compare" / f"{n:02d}_{slug(data)}",
                                       exclude=curves_lib.THROUGHPUT_KEYS + ("wall_seconds",))
    if drawn:
      out[f"Runs on {data}"] = _relative(drawn, out_dir)
    drawn = curves_lib.plot_comparison({runs[i].name: runs[i].rows for i in members},
                                       out_dir / "assets" / "compare" / f"{n:02d}_{slug(data)}_eval", split="eval")
    if drawn:
      out[f"Sample quality during training, runs on {data}"] = _relative(drawn, out_dir)
  return out


def _json_safe(value):
  """NaN/Inf as strings, so report.json is strict JSON."""
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  if isinstance(value, dict):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  return value
