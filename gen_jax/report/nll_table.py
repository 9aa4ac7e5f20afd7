"""Results table for the likelihood benchmark: our runs next to Burda et al. 2015, Table 1.

  python -m gen_jax.report.nll_table runs/burda_vae runs/burda_iwae_k5 runs/burda_iwae_k50 --out results/nll_mnist.md

Reads each run's `<workdir>/eval/metrics.json` (written by eval.py) and writes
a Markdown table: test NLL with its protocol, training steps, wall time and
hardware. Nothing is typed in by hand except the published reference numbers.
"""
from __future__ import annotations

import pathlib

from gen_jax.report import table_cli

# Burda, Grosse, Salakhutdinov 2015 (arXiv 1509.00519), Table 1, 1 stochastic layer,
# 784-200-200-50, dynamically binarized MNIST, test NLL in nats (k=5000 estimate), 3280 epochs.
PUBLISHED = {("elbo", 1): 86.76, ("elbo", 5): 86.47, ("elbo", 50): 86.35,
             ("iwae", 1): 86.76, ("iwae", 5): 85.54, ("iwae", 50): 84.78}


def optimizer_text(opt: dict, batch: int) -> str:
  """How a run was trained, short enough for a table note: 'adam 0.001, constant_cosine (...), batch 100'."""
  name = opt.get("schedule", "constant")
  detail = {"constant_cosine": lambda: f" (cosine over the last {opt.get('decay_fraction', 0.3):.0%} "
                                       f"to {opt.get('final_lr_fraction', 0.0):g}x)",
            "cosine": lambda: f" (to {opt.get('final_lr_fraction', 0.0):g}x)",
            "burda": lambda: (f" ({opt['stage_steps']} steps per stage unit)" if opt.get("stage_steps")
                              else " (stages scaled to the run)")}.get(name, lambda: "")()
  return f"{opt.get('name', 'adam')} {opt.get('learning_rate', '?'):g}, {name}{detail}, batch {batch}"


def row_for(workdir: pathlib.Path) -> dict:
  report = table_cli.read_eval_report(workdir)
  cfg, m, t = report["config"], report["metrics"], report["train"]
  p = table_cli.group_protocol(report, "likelihood")
  obj, k = cfg["objective"]["name"], int(cfg["objective"]["num_samples"])
  steps = int(report["step"])
  batch = int(cfg["data"]["batch_size"])
  return {
      "run": workdir.name, "k": k,
      "model": ("VAE" if obj == "elbo" else "IWAE") + (" (DReG)" if cfg["objective"].get("gradient") == "dreg" else ""),
      "nll": m["nll"], "elbo": -m["elbo"], "active": f"{m['active_units']}/{m['num_latents']}",
      "published": PUBLISHED.get((obj, k)), "steps": steps,
      "epochs": steps * batch / 60000, "wall": t.get("wall_seconds"),
      "hardware": f"{t.get('num_devices')}x {t.get('device_kind')}",
      "training": optimizer_text(cfg.get("optimizer", {}), batch),
      "protocol": f"{p['split']} split, {p['num_examples']} images, k={p['num_importance_samples']}, "
                  + (f"-ELBO from {p['elbo_samples']} sample(s) of q(z|x), " if "elbo_samples" in p else "")
                  + f"{p['binarization'].split(',')[0]}, seed {p['seed']}",
  }


def to_markdown(rows: list[dict]) -> str:
  head = ("| run | model | k (train) | test NLL (nats) | -ELBO | active units | Burda et al. NLL | steps | epochs "
          "| train wall time | hardware |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
  lines = []
  for r in rows:
    pub = f"{r['published']:.2f}" if r["published"] else "-"
    wall = f"{r['wall'] / 60:.1f} min" if r["wall"] else "-"
    lines.append(f"| {r['run']} | {r['model']} | {r['k']} | {r['nll']:.2f} | {r['elbo']:.2f} | {r['active']} | {pub} "
                 f"| {r['steps']} | {r['epochs']:.0f} | {wall} | {r['hardware']} |")
  protocols = sorted({r["protocol"] for r in rows})
  notes = "\n".join(f"- protocol: {p}" for p in protocols)
  trainings = sorted({r["training"] for r in rows})
  notes += "".join(f"\n- training: {t}" for t in trainings)
  return head + "\n".join(lines) + "\n\n" + notes + "\n- Burda et al. trained for 3280 epochs (about 2 million steps).\n"


if __name__ == "__main__":
  table_cli.main(__doc__, row_for, to_markdown)
