"""Results table for the mode-collapse benchmark on 2-D Gaussian mixtures, one row per run.

  python -m gen_jax.eval.mode_table runs/grid25_* --out results/grid25_modes.md

Reads each run's `<workdir>/eval/metrics.json` (written by eval.py): modes covered, fraction of
high-quality samples (within 3 standard deviations of a mode), KL of the mode histogram to uniform,
with the protocol (sample count, criterion, seed) and the training budget.
"""
from __future__ import annotations

import pathlib

from gen_jax.eval import table_cli


def row_for(workdir: pathlib.Path) -> dict:
  report = table_cli.read_eval_report(workdir)
  cfg, m, t = report["config"], report["metrics"], report["train"]
  p = table_cli.group_protocol(report, "modes")
  gan = cfg["gan"]
  extras = [f"{k}={gan[k]}" for k in ("gp_weight", "r1_weight", "clip_value") if gan.get(k)]
  if cfg["model"].get("spectral_norm"):
    extras.append("spectral norm")
  return {"run": workdir.name, "loss": gan["loss"] + (f" ({', '.join(extras)})" if extras else ""),
          "n_critic": gan["n_critic"], "modes": f"{m['modes_covered']} / {m['num_modes']}",
          "hq": m["high_quality_fraction"], "kl": m["kl_to_uniform"], "steps": report["step"],
          "wall": t.get("wall_seconds"),
          "protocol": f"{p['num_samples']} samples from the {p['params']} generator; high quality = "
                      f"{p['high_quality']}; mode covered if {p['mode_covered_if']}; seed {p['seed']}; "
                      f"data {p['dataset']}"}


def to_markdown(rows: list[dict]) -> str:
  head = ("| run | objective | n_critic | modes covered | high-quality fraction | KL(modes ‖ uniform) | G steps "
          "| train wall time |\n|---|---|---|---|---|---|---|---|\n")
  body = "\n".join(f"| {r['run']} | {r['loss']} | {r['n_critic']} | {r['modes']} | {r['hq']:.3f} | {r['kl']:.3f} "
                   f"| {r['steps']} | {r['wall'] / 60:.1f} min |" for r in rows)
  notes = "\n".join(f"- protocol: {p}" for p in sorted({r['protocol'] for r in rows}))
  return head + body + "\n\n" + notes + "\n"


if __name__ == "__main__":
  table_cli.main(__doc__, row_for, to_markdown)
