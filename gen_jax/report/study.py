"""The study report: ledger records in, a table with intervals, significance, curves, grids and a summary out.

Everything comes from the ledger records (gen_jax/jobs/study.py) and the study file's description, never from
checkpoints or workdirs, so a study finished over several machines re-aggregates to the same report, and records
merged from several ledger folders give the report one folder holding them all would give. Per dataset and metric:
mean, standard deviation and a 95% interval over seeds (gen_jax/report/stats.py: Student t by default, a seeded
bootstrap on request), the per-seed values, Welch t-tests between every pair of entries Holm-corrected over the pairs
of that metric, and the honest-ranking verdicts of gen_jax/report/ranking.py. A metric is "won" by the best entry
only when it is significantly better than every other ranked entry; otherwise the entries not significantly worse
than the best tie. Writes index.html (opens from disk), report.md and report.json, plus PNGs under assets/.
"""
from __future__ import annotations

import json
import math
import pathlib
import shutil
from typing import Mapping, Sequence

from gen_jax.data.dataset import source_kind
from gen_jax.errors import ConfigError
from gen_jax.eval import metric_specs as specs
from gen_jax.report import ranking, render, stats
from gen_jax.report.render import BulletList, Cell, Figure, Figures, Heading, Paragraph, Table

try:
  from gen_jax.storage.atomic import write_bytes_atomic, write_text_atomic
except ImportError:   # before gen_jax/storage/atomic.py existed
  from gen_jax.jobs.study import write_bytes_atomic, write_text_atomic   # noqa: F401

LEDGER_RECORD = "record.json"
CURVE_METRIC = "fd_classifier"
ASSETS = "assets"


# ----------------------------------------------------------------------------------------------------------- input
def read_ledgers(ledger_dirs: Sequence[str | pathlib.Path]) -> dict[str, dict]:
  """{run key: record} from every `<dir>/<key>/record.json`; a key found in two folders must hold the same record
  (the same run copied twice), else it is an error naming both."""
  records: dict[str, dict] = {}
  where: dict[str, pathlib.Path] = {}
  for d in ledger_dirs:
    d = pathlib.Path(d)
    if not d.is_dir():
      raise ConfigError(f"ledger folder {d} does not exist; run the study first (python -m gen_jax.study ...)")
    for path in sorted(d.glob(f"*/{LEDGER_RECORD}")):
      try:
        record = json.loads(path.read_text())
      except ValueError as e:
        raise ConfigError(f"ledger record {path} is unreadable ({e}); restore it from git or delete its "
                          f"folder") from None
      key = record.get("key", path.parent.name)
      if key in records and _canonical(records[key]) != _canonical(record):
        raise ConfigError(f"run {key} has two different ledger records, {where[key]} and {path}; keep one of them "
                          f"(delete the other's folder) and aggregate again")
      records[key] = record
      where[key] = path
  return records


def _canonical(record: dict) -> str:
  return json.dumps(record, sort_keys=True, default=str)


def _record_dirs(ledger_dirs: Sequence[str | pathlib.Path]) -> dict[str, pathlib.Path]:
  out = {}
  for d in ledger_dirs:
    for path in sorted(pathlib.Path(d).glob(f"*/{LEDGER_RECORD}")):
      out.setdefault(path.parent.name, path.parent)
  return out


# ----------------------------------------------------------------------------------------------------- aggregation
def _finite(v) -> float | None:
  x = specs.as_number(v)
  return x if x is not None and math.isfinite(x) else None


def _metrics(record: dict) -> dict:
  return dict(record.get("metrics", {}).get("metrics", {}))


def _capabilities(record: dict) -> dict:
  """What the run's model can do, as its evaluation recorded it (a record without it: {})."""
  caps = record.get("metrics", {}).get("capabilities")
  return caps if isinstance(caps, dict) else {}


def _winner(name: str, entries: list[str], values: dict[str, list], verdicts: dict, comparisons: dict) -> dict:
  """{kind: win | tie | only | none, entries}: the best unmarked entry by mean wins if significantly better than
  every other unmarked entry with a value; otherwise it ties with those it is not significantly better than; 'only'
  when every other entry with a value is marked (nothing to compare it with: not a win)."""
  best = [e for e in entries if verdicts[e]["best"]]
  if not best:
    return {"kind": "none", "entries": []}
  lead = best[0]
  ranked = [e for e in entries if verdicts[e]["marked"] is None and e != lead
            and any(v is not None for v in values[e])]
  tied = [lead] + [e for e in ranked
                   if not (stats.significantly(comparisons, lead, e) or {}).get("significant", False)]
  if not ranked:
    return {"kind": "only", "entries": tied}
  return {"kind": "win" if len(tied) == 1 else "tie", "entries": tied}


# Protocol fields whose values must agree over every run of a dataset: numbers measured with different feature
# networks or on different sources of the data (e.g. CIFAR-10's original vs its lossy JPEG copy) are not averaged.
MUST_AGREE = (("samples", "feature_network_sha256"), ("latent", "feature_network_sha256"), ("", "dataset_source"))


def check_same_protocol(runs: Sequence[dict], dataset: str) -> None:
  """ConfigError naming two runs of `dataset` whose numbers were measured under different protocols (MUST_AGREE)."""
  for group, field in MUST_AGREE:
    seen: dict[str, str] = {}
    for r in runs:
      proto = r.get("metrics", {}).get("protocol", {})
      value = (proto.get(group) or {}).get(field) if group else proto.get(field)
      if value is None:
        continue
      value = source_kind(value) if field == "dataset_source" else str(value)
      seen.setdefault(value, r["key"])
      if len(seen) > 1:
        (a, ka), (b, kb) = list(seen.items())[:2]
        where = f"protocol {group + '.' if group else ''}{field}"
        raise ConfigError(f"runs {ka} and {kb} of {dataset} differ in {where} ({a[:60]!r} vs {b[:60]!r}): their "
                          "numbers cannot be averaged. Re-evaluate one of them on the other's setup, or aggregate "
                          "them in separate reports (--out / --ledger).")


def aggregate(records: Mapping[str, dict], info: dict, method: str = "t") -> dict:
  """The study's numbers as one JSON-able dict (report.json): per dataset and metric, each entry's per-seed values,
  summary, verdict; the pairwise tests; the winner. Runs of the plan without a record are listed as missing,
  records outside the plan as ignored."""
  entries = [e["name"] for e in info["entries"]]
  planned = {f"{e}__{d}__seed{s}" for e in entries for d in info["datasets"] for s in info["seeds"]}
  used = {k: r for k, r in records.items() if k in planned}
  out = {
      "study": info,
      "statistics": {
          "interval": (f"{int(stats.CONFIDENCE * 100)}% confidence interval of the mean over seeds: "
                       + ("Student t, mean +- t(0.975, n-1) * sd / sqrt(n)" if method == "t"
                          else "percentile bootstrap of the mean (10000 resamples, seed 0)")),
          "method": method,
          "test": (f"Welch's unequal-variance t-test between every pair of entries, two-sided, p-values "
                   f"Holm-corrected over the pairs of each metric and dataset; significant at alpha {stats.ALPHA}; a "
                   f"metric with a target (→1) is compared on each seed's distance to the target"),
          "ranking": ranking.rule_lines(sorted({n for r in used.values() for n in _metrics(r)})),
      },
      "missing": sorted(planned - set(records)),
      "ignored": sorted(set(records) - planned),
      "runs": [_run_row(used[k]) for k in sorted(used)],
      "datasets": {},
  }
  for dataset in info["datasets"]:
    runs = {e: sorted((r for r in used.values() if r["entry"] == e and r["dataset"] == dataset),
                      key=lambda r: r["seed"]) for e in entries}
    present = [e for e in entries if runs[e]]
    check_same_protocol([r for e in present for r in runs[e]], dataset)
    names = sorted({n for e in present for r in runs[e] for n, v in _metrics(r).items() if _finite(v) is not None})
    conditional = {e: any(_capabilities(r).get("conditional") for r in runs[e]) for e in present}
    table = {}
    for group, rows in specs.ordered_names(names):
      for name in rows:
        spec = specs.spec_or_unknown(name)
        values = {e: [_finite(_metrics(r).get(name)) for r in runs[e]] for e in present}
        if not any(v is not None for vs in values.values() for v in vs):
          continue
        verdicts = {e: {"best": v.best, "marked": v.marked}
                    for e, v in ranking.judge_runs(name, {e: [_metrics(r) for r in runs[e]] for e in present},
                                                   conditional=conditional).items()}
        # A target metric (better = closer to spec.target) is tested on each seed's distance to the target: a
        # difference of raw values says nothing about which entry is closer.
        tested = values if spec.target is None else {
            e: [None if v is None else abs(v - spec.target) for v in vs] for e, vs in values.items()}
        comparisons = stats.pairwise(tested) if spec.ranked else {}
        floor = None
        if spec.floor:
          floors = [_finite(_metrics(r).get(spec.floor)) for e in present for r in runs[e]]
          floor = stats.summarize(floors)["mean"] if any(f is not None for f in floors) else None
        table[name] = {
            "group": group, "label": spec.label, "unit": spec.unit, "direction": spec.direction,
            "ranked": spec.ranked, "floor": floor,
            "entries": {e: dict(stats.summarize(values[e], method=method), values=values[e],
                                seeds=[r["seed"] for r in runs[e]], verdict=verdicts[e]) for e in present},
            "comparisons": comparisons,
            "winner": _winner(name, present, values, verdicts, comparisons) if spec.ranked else None,
        }
    curves = {e: {str(r["seed"]): _curve(r) for r in runs[e]} for e in present}
    out["datasets"][dataset] = {"entries": present, "seeds": {e: [r["seed"] for r in runs[e]] for e in present},
                                "conditional": conditional,
                                "metrics": table, "curves": curves, "protocol": _protocol(runs)}
  return out


def _curve(record: dict) -> list[list[float]]:
  """[[images seen, fd_classifier], ...] of the run's training-time evaluations."""
  per_step = int(record.get("budget", {}).get("images_per_step", 1))
  return [[int(r["step"]) * per_step, float(r[CURVE_METRIC])] for r in record.get("curve", {}).get("eval_rows", [])
          if _finite(r.get(CURVE_METRIC)) is not None]


def _run_row(record: dict) -> dict:
  hw, code, budget = record.get("hardware", {}), record.get("code", {}), record.get("budget", {})
  return {"key": record["key"], "entry": record["entry"], "dataset": record["dataset"], "seed": record["seed"],
          "steps": budget.get("steps"), "images_seen": budget.get("images_seen"), "rule": budget.get("rule"),
          "budget_images": budget.get("images"), "budget_seconds": budget.get("seconds"),
          "train_wall_seconds": record.get("train", {}).get("wall_seconds"),
          "train_eval_seconds": record.get("train", {}).get("eval_seconds"),   # FD curve + grids, inside the wall
          "eval_wall_seconds": record.get("eval", {}).get("wall_seconds"),
          "hardware": (f"{hw.get('cpu')}, {hw.get('cpu_cores')} cores, {hw.get('num_devices')}x "
                       f"{hw.get('device_kind')}, jax {hw.get('jax_version')}"),
          "commit": (code.get("commit") or "?")[:10] + (" (dirty)" if code.get("code_dirty") else "")}


def _protocol(runs: Mapping[str, list[dict]]) -> dict:
  """{group: {field: value}} with fields that agree over all runs given once and fields that differ as
  {'varies': {value: [entries]}}."""
  per_group: dict[str, dict[str, dict[str, list[str]]]] = {}
  for entry, rs in runs.items():
    for r in rs:
      for group, proto in r.get("metrics", {}).get("protocol", {}).items():
        if not isinstance(proto, dict):
          proto = {"value": proto}
        for field, value in proto.items():
          text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
          seen = per_group.setdefault(group, {}).setdefault(field, {}).setdefault(text, [])
          if entry not in seen:
            seen.append(entry)
  out = {}
  for group in sorted(per_group):
    out[group] = {}
    for field in sorted(per_group[group]):
      variants = per_group[group][field]
      out[group][field] = next(iter(variants)) if len(variants) == 1 else {"varies": variants}
  return out


# ---------------------------------------------------------------------------------------------------------- output
def _fmt(name: str, x) -> str:
  return specs.format_value(name, x)


def _cell(name: str, summary: dict) -> str:
  if summary["n"] == 0:
    return "—"
  if summary["ci_low"] is None:
    return f"{_fmt(name, summary['mean'])} (n={summary['n']})"
  return (f"{_fmt(name, summary['mean'])} [{_fmt(name, summary['ci_low'])}, {_fmt(name, summary['ci_high'])}] "
          f"(n={summary['n']})")


def _summary_sentences(dataset: str, data: dict) -> list[str]:
  """Plain-language lines from the numbers: who wins which ranked metric, where it is a tie, who is marked."""
  out = []
  for name, row in data["metrics"].items():
    spec = specs.spec_or_unknown(name)
    measured = [e for e, v in row["entries"].items() if v["n"]]
    if not row["ranked"] or spec.derived or row["winner"] is None or len(measured) < 2:
      continue
    w = row["winner"]
    better = {"lower": "lowest", "higher": "highest"}.get(row["direction"], "best")
    marked = [f"{e} ({v['verdict']['marked']})" for e, v in row["entries"].items() if v["verdict"]["marked"]]
    if w["kind"] == "win":
      e = w["entries"][0]
      text = (f"{row['label']}: {e} is best ({better} mean {_fmt(name, row['entries'][e]['mean'])}), "
              f"significantly better than every other ranked entry.")
    elif w["kind"] == "only":
      e = w["entries"][0]
      text = (f"{row['label']}: {e} ({better} mean {_fmt(name, row['entries'][e]['mean'])}) is the only ranked "
              "entry: nothing to compare it with.")
    elif w["kind"] == "tie" and any(row["entries"][x]["n"] < 2 for x in w["entries"]):
      e = w["entries"][0]
      text = (f"{row['label']}: {e} has the {better} mean ({_fmt(name, row['entries'][e]['mean'])}); with one seed "
              f"of {', '.join(x for x in w['entries'] if row['entries'][x]['n'] < 2)} no difference can be tested "
              "yet: not called.")
    elif w["kind"] == "tie":
      e = w["entries"][0]
      others = ", ".join(w["entries"][1:])
      text = (f"{row['label']}: {e} has the {better} mean ({_fmt(name, row['entries'][e]['mean'])}) but is not "
              f"significantly better than {others}: a tie.")
    elif len({row["entries"][e]["mean"] for e in measured}) == 1:
      text = f"{row['label']}: every entry has the same mean ({_fmt(name, row['entries'][measured[0]]['mean'])})."
    else:
      text = f"{row['label']}: no entry is ranked best."
    if marked:
      text += " Marked, not ranked: " + "; ".join(marked) + "."
    out.append(text)
  return out


def _plot_curves(dataset: str, data: dict, path: pathlib.Path) -> bool:
  curves = data["curves"]
  if not any(points for seeds in curves.values() for points in seeds.values()):
    return False
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.2))
  colors = plt.get_cmap("tab10").colors
  for i, entry in enumerate(data["entries"]):
    first = True
    for seed, points in sorted(curves.get(entry, {}).items(), key=lambda kv: int(kv[0])):
      if not points:
        continue
      xs, ys = [p[0] for p in points], [p[1] for p in points]
      ax.plot(xs, ys, color=colors[i % len(colors)], linewidth=1.1, alpha=0.85, marker="o", markersize=2.5,
              label=entry if first else None)
      first = False
  ax.set_yscale("log")
  ax.set_xlabel("training images seen", fontsize=9)
  ax.set_ylabel("Frechet distance (classifier features)", fontsize=9)
  ax.set_title(f"{dataset}: sample quality during training, one line per seed", fontsize=10)
  ax.grid(True, alpha=0.3, which="both")
  ax.tick_params(labelsize=8)
  ax.legend(fontsize=8)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  import io
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
  plt.close(fig)
  write_bytes_atomic(path, buf.getvalue())
  return True


# The headline table (report top, headline.md for the README): entries as rows, the metrics researchers compare
# families by as columns. A metric no entry has is left out.
HEADLINE = ("fd_classifier", "precision", "recall", "coverage", "nll_bits_per_dim", "ppl_prior_slerp",
            "impute_mse_half", "impute_mse_centre", "impute_mse_random")


def _compact(name: str, summary: dict) -> str:
  """mean [lo, hi] without the seed count (the table states it once per row)."""
  if summary["n"] == 0:
    return "—"
  if summary["ci_low"] is None:
    return _fmt(name, summary["mean"])
  return f"{_fmt(name, summary['mean'])} [{_fmt(name, summary['ci_low'])}, {_fmt(name, summary['ci_high'])}]"


def headline_table(dataset: str, data: dict) -> Table:
  """Entries x HEADLINE metrics: mean [95% CI], bold = wins or ties for best, × = marked (not ranked); a last row
  with the real-data floor / mean-fill baseline of each column."""
  names = [n for n in HEADLINE if n in data["metrics"]]
  header = ["entry", "seeds"] + [
      f"{data['metrics'][n]['label']}{' (' + data['metrics'][n]['unit'] + ')' if data['metrics'][n]['unit'] else ''} "
      f"{specs.spec_or_unknown(n).arrow}".strip() for n in names]
  rows = []
  for e in data["entries"]:
    cells = [Cell(e, bold=True), ", ".join(str(s) for s in data["seeds"][e])]
    for n in names:
      row = data["metrics"][n]
      s = row["entries"].get(e)
      if s is None or s["n"] == 0:
        cells.append("—")
        continue
      text = _compact(n, s) + (" ×" if s["verdict"]["marked"] else "")
      winners = set(row["winner"]["entries"]) if row["winner"] else set()
      cells.append(Cell(text, bold=e in winners, title=s["verdict"]["marked"] or ""))
    rows.append(cells)
  baseline = [Cell("baseline", bold=True), ""]
  for n in names:
    row = data["metrics"][n]
    which = ranking.baseline_of(n)
    base = data["metrics"].get(which[0]) if which else None
    if row["floor"] is not None:
      baseline.append(f"real data {_fmt(n, row['floor'])}")
    elif base is not None:
      # A conditional model's likelihood baseline is fitted per class (-log p(x|y)): shown apart, not averaged in.
      per_class = n in ranking.CONDITIONAL_LIKELIHOOD
      groups: dict[bool, list[float]] = {}
      for e, v in base["entries"].items():
        if v["n"]:
          groups.setdefault(per_class and bool(data.get("conditional", {}).get(e)), []).append(v["mean"])
      baseline.append("; ".join(f"{which[1]}{' given the class' if c else ''} {_fmt(n, sum(m) / len(m))}"
                                for c, m in sorted(groups.items())))
    else:
      baseline.append("")
  rows.append(baseline)
  return Table(header, rows, caption=f"{dataset}: mean [95% CI] over seeds; bold = wins or ties for best; "
                                     f"× = marked by the ranking rule (not ranked); last row: the baselines")


def _blocks(agg: dict, figures: dict) -> list:
  info = agg["study"]
  blocks: list = [Heading(1, f"Study: {info['name']}")]
  if info.get("description"):
    blocks.append(Paragraph([info["description"]]))
  b = info["budget"]
  rule = (f"equal training images seen: {b['images']:,} per run" if b["rule"] == "images"
          else f"equal wall-clock training time: {b['seconds']:g} s per run on the hardware used")
  blocks.append(Paragraph([f"Study file {info['file']}{':' + info['variant'] if info.get('variant') else ''}; "
                           f"{len(info['entries'])} entries x {len(info['datasets'])} datasets x "
                           f"{len(info['seeds'])} seeds; budget rule: {rule}. {len(agg['runs'])} runs recorded."]))
  if agg["missing"]:
    blocks.append(Paragraph([f"Not yet run ({len(agg['missing'])}): {', '.join(agg['missing'])}. "
                             "The numbers below use the runs recorded so far."], note=True))
  if agg["ignored"]:
    blocks.append(Paragraph([f"Ledger records outside this study's plan, ignored: {', '.join(agg['ignored'])}."],
                            note=True))
  blocks.append(Heading(2, "Summary", "summary"))
  for dataset, data in agg["datasets"].items():
    lines = _summary_sentences(dataset, data)
    blocks.append(Paragraph([Cell(dataset, bold=True)]))
    blocks.append(BulletList([[line] for line in lines] or [["no ranked metric recorded yet"]]))
  for dataset, data in agg["datasets"].items():
    blocks.append(headline_table(dataset, data))
  st = agg["statistics"]
  blocks.append(Paragraph([f"Intervals: {st['interval']}. Differences: {st['test']}. "
                           "A 'win' is significant against every other ranked entry; otherwise the entries not "
                           "significantly different from the best mean tie. " + " ".join(st["ranking"])], note=True))
  for dataset, data in agg["datasets"].items():
    entries = data["entries"]
    blocks.append(Heading(2, f"{dataset}", f"ds-{dataset}"))
    header = ["metric"] + entries + ["real-data floor"]
    rows, sections, last_group = [], set(), None
    for name, row in data["metrics"].items():
      if row["group"] != last_group:
        sections.add(len(rows))
        rows.append([specs.GROUPS.get(row["group"], row["group"])] + [""] * (len(header) - 1))
        last_group = row["group"]
      spec = specs.spec_or_unknown(name)
      label = f"{row['label']}{' (' + row['unit'] + ')' if row['unit'] else ''} {spec.arrow}".strip()
      cells = [Cell(label, title=name)]
      winners = set(row["winner"]["entries"]) if row["winner"] else set()
      for e in entries:
        s = row["entries"].get(e)
        if s is None:
          cells.append("—")
          continue
        text = _cell(name, s)
        if s["verdict"]["marked"]:
          text += " ×"
        cells.append(Cell(text, bold=e in winners, title=s["verdict"]["marked"] or ""))
      cells.append(_fmt(name, row["floor"]) if row["floor"] is not None else "")
      rows.append(cells)
    blocks.append(Table(header, rows, section_rows=frozenset(sections),
                        caption=f"{dataset}: mean [95% CI] (n seeds); bold = wins or ties for best; "
                                f"× = marked by the ranking rule (not ranked)"))
    marks = sorted({(e, name, s["verdict"]["marked"]) for name, row in data["metrics"].items()
                    for e, s in row["entries"].items() if s["verdict"]["marked"]})
    if marks:
      blocks.append(Paragraph(["Marked: " + "; ".join(f"{e} on {n}: {m}" for e, n, m in marks) + "."], note=True))
    seed_rows = []
    for name, row in data["metrics"].items():
      cells = [Cell(f"{row['label']}{' (' + row['unit'] + ')' if row['unit'] else ''}", title=name)]
      for e in entries:
        s = row["entries"].get(e)
        cells.append(", ".join(f"s{seed}: {_fmt(name, v)}" for seed, v in zip(s["seeds"], s["values"])) if s else "—")
      seed_rows.append(cells)
    blocks.append(Table(["metric"] + entries, seed_rows, caption=f"{dataset}: per-seed values"))
    sig_rows = []
    for name, row in data["metrics"].items():
      for c in row["comparisons"].values():
        if c["significant"]:
          sig_rows.append([Cell(row["label"], title=name), f"{c['a']} - {c['b']}", _fmt(name, c["diff"]),
                           f"{c['p']:.2g}", f"{c['p_adjusted']:.2g}"])
    if sig_rows:
      blocks.append(Table(["metric", "difference of means", "value", "Welch p", "Holm-adjusted p"], sig_rows,
                          caption=f"{dataset}: significant differences (all pairs in report.json)"))
    else:
      blocks.append(Paragraph([f"{dataset}: no difference between entries is significant after Holm's correction."],
                              note=True))
    if figures.get(dataset, {}).get("curves"):
      blocks.append(Figures([Figure(figures[dataset]["curves"], f"{dataset}: Frechet distance during training "
                                                                 f"(2000-sample protocol of the run; per seed)")]))
    grids = figures.get(dataset, {}).get("samples", {})
    if grids:
      blocks.append(Figures([Figure(path, f"{e} (seed {seed})") for e, (path, seed) in grids.items()]))
    blocks.append(Heading(3, f"{dataset}: protocol"))
    items = []
    for group, fields in data["protocol"].items():
      parts = []
      for field, value in fields.items():
        if isinstance(value, dict) and "varies" in value:
          value = " | ".join(f"{v} ({', '.join(es)})" for v, es in value["varies"].items())
        parts.append(f"{field}: {value}")
      items.append([Cell(group, bold=True), " — " + "; ".join(parts)])
    blocks.append(BulletList(items))
  blocks.append(Heading(2, "Runs: what each one got", "runs"))
  blocks.append(Table(["run", "steps", "images seen", "train wall (of which FD curve + grids)", "eval wall",
                       "hardware", "commit (evaluation)"],
                      [[r["key"], str(r["steps"]), f"{r['images_seen']:,}" if r["images_seen"] is not None else "",
                        _seconds(r["train_wall_seconds"]) + (f" ({_seconds(r['train_eval_seconds'])})"
                                                             if r.get("train_eval_seconds") is not None else ""),
                        _seconds(r["eval_wall_seconds"]), r["hardware"], r["commit"]] for r in agg["runs"]]))
  blocks.append(Paragraph([f"Shared evaluation overrides: {', '.join(info['eval_overrides']) or 'none'}. "
                           f"Shared training overrides: {', '.join(info['train_overrides']) or 'none'}. Entries: "
                           + "; ".join(f"{e['name']} = {e['config']}"
                                       + (f" with {', '.join(e['overrides'])}" if e["overrides"] else "")
                                       for e in info["entries"]) + "."], note=True))
  return blocks


def _seconds(x) -> str:
  if x is None:
    return ""
  x = float(x)
  return f"{x / 60:.1f} min" if x >= 60 else f"{x:.0f} s"


def build_study_report(ledger_dirs: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path, info: dict,
                       method: str = "t") -> dict[str, pathlib.Path]:
  """Aggregates the records of `ledger_dirs` and writes index.html, report.md, report.json and assets/ into
  `out_dir`. The output depends only on the records and `info`."""
  out_dir = pathlib.Path(out_dir)
  records = read_ledgers(ledger_dirs)
  agg = aggregate(records, info, method)
  dirs = _record_dirs(ledger_dirs)
  assets = out_dir / ASSETS
  if assets.exists():
    shutil.rmtree(assets)
  figures: dict[str, dict] = {}
  for dataset, data in agg["datasets"].items():
    fig = figures.setdefault(dataset, {"samples": {}})
    rel = f"{ASSETS}/curves_{dataset}.png"
    if _plot_curves(dataset, data, out_dir / rel):
      fig["curves"] = rel
    for entry in data["entries"]:
      seed = min(data["seeds"][entry])
      key = f"{entry}__{dataset}__seed{seed}"
      name = records[key].get("images", {}).get("samples")
      src = dirs.get(key, pathlib.Path()) / name if name else None
      if src is not None and src.is_file():
        rel = f"{ASSETS}/{key}_samples.png"
        write_bytes_atomic(out_dir / rel, src.read_bytes())
        fig["samples"][entry] = (rel, seed)
  agg["figures"] = {d: {"curves": f.get("curves"), "samples": {e: p for e, (p, _) in f["samples"].items()}}
                    for d, f in figures.items()}
  blocks = _blocks(agg, figures)
  title = f"Study: {info['name']}"
  paths = {"index_html": out_dir / "index.html", "report_md": out_dir / "report.md",
           "report_json": out_dir / "report.json"}
  write_text_atomic(paths["index_html"], render.to_html(title, blocks))
  write_text_atomic(paths["report_md"], render.to_markdown(title, blocks))
  write_text_atomic(paths["report_json"], json.dumps(agg, indent=1, sort_keys=True, default=str) + "\n")
  # The headline tables alone, for a README: the same cells as the report's.
  paths["headline_md"] = out_dir / "headline.md"
  write_text_atomic(paths["headline_md"], render.to_markdown(
      title, [headline_table(d, data) for d, data in agg["datasets"].items()]))
  return paths
