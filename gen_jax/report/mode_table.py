"""Results table for the mode-collapse benchmarks (2-D Gaussian mixtures, Stacked MNIST), one row per run.

  python -m gen_jax.report.mode_table runs/grid25_* --out results/grid25_modes.md
  python -m gen_jax.report.mode_table runs/stacked_* --out results/stacked_mnist_modes.md

Reads each run's `<workdir>/eval/metrics.json` (written by eval.py): modes covered, fraction of
high-quality samples (within 3 standard deviations of a mode; mixtures only), KL of the mode histogram to
uniform, with the protocol (sample count, criterion or mode classifier, seed) and the training budget.
"""
from __future__ import annotations

import pathlib

from gen_jax.report import table_cli


def row_for(workdir: pathlib.Path) -> dict:
  report = table_cli.read_eval_report(workdir)
  cfg, m, t = report["config"], report["metrics"], report["train"]
  p = table_cli.group_protocol(report, "modes")
  gan = cfg["gan"]
  extras = [f"{k}={gan[k]}" for k in ("gp_weight", "r1_weight", "clip_value") if gan.get(k)]
  if cfg["model"].get("spectral_norm"):
    extras.append("spectral norm")
  if "high_quality" in p:     # 2-D mixture
    criterion = f"high quality = {p['high_quality']}; mode covered if {p['mode_covered_if']}"
  else:                       # Stacked MNIST
    criterion = (f"mode = {p['mode']} (sha256 {p['feature_network_sha256'][:12]}); mode covered if >= 1 sample; "
                 f"{p['kl']}")
  model = cfg["model"]
  arch = (f"{model['arch']} G{model['g_width']}/D{model['d_width']}" if model["arch"] != "mlp"
          else "mlp " + "-".join(str(w) for w in model.get("hidden", ())))
  return {"run": workdir.name, "loss": gan["loss"] + (f" ({', '.join(extras)})" if extras else ""),
          "n_critic": gan["n_critic"],
          "modes": f"{m['modes_covered']} / {m['num_modes']}" + _floor(m, "modes_covered", "d"),
          "hq": m.get("high_quality_fraction"), "kl": f"{m['kl_to_uniform']:.3f}" + _floor(m, "kl_to_uniform", ".3f"),
          "steps": report["step"],
          "wall": t.get("wall_seconds"), "arch": arch,
          "protocol": f"{p['num_samples']} samples from the {p['params']} generator; {criterion}; seed {p['seed']}; "
                      f"data {p['dataset']}"}


def _floor(metrics: dict, name: str, fmt: str) -> str:
  """' (real data: x)' where eval.py measured the metric's real-data floor (Stacked MNIST), else ''."""
  floor = metrics.get(name + "_floor")
  return "" if floor is None else f" (real data: {format(floor, fmt)})"


def to_markdown(rows: list[dict]) -> str:
  head = ("| run | objective | networks | n_critic | modes covered | high-quality fraction | KL(modes ‖ uniform) "
          "| G steps | train wall time |\n|---|---|---|---|---|---|---|---|---|\n")
  body = "\n".join(f"| {r['run']} | {r['loss']} | {r['arch']} | {r['n_critic']} | {r['modes']} | "
                   f"{'n/a' if r['hq'] is None else format(r['hq'], '.3f')} | {r['kl']} "
                   f"| {r['steps']} | {r['wall'] / 60:.1f} min |" for r in rows)
  notes = "\n".join(f"- protocol: {p}" for p in sorted({r['protocol'] for r in rows}))
  return head + body + "\n\n" + notes + "\n"


if __name__ == "__main__":
  table_cli.main(__doc__, row_for, to_markdown)
