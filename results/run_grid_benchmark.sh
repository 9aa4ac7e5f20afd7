#!/usr/bin/env bash
# Reproduces results/grid25_modes.md: every GAN objective on the 25-Gaussian grid with the same MLP
# networks and seed 0 (configs/gan_toy.py:grid,<objective>; 15000 generator steps, 6000 for the
# n_critic=5 Wasserstein variants), scored by eval.py (2500 samples, 3 standard deviations).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
runs=()
for obj in r1 nonsaturating minimax wgan wgan_gp hinge lsgan; do
  $PY train.py --config=configs/gan_toy.py:grid,$obj --workdir=runs/grid25_$obj --no_progress
  $PY eval.py --workdir=runs/grid25_$obj --no_progress > /dev/null
  runs+=(runs/grid25_$obj)
done
$PY -m gen_jax.report.mode_table "${runs[@]}" --out results/grid25_modes.md
cp runs/grid25_r1/eval/samples_*.png results/grid25_r1_samples.png
cp runs/grid25_nonsaturating/eval/samples_*.png results/grid25_nonsaturating_samples.png
