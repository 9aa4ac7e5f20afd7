#!/usr/bin/env bash
# Reproduces results/nll_mnist.md: MLP VAE and IWAE (k=5, k=50), Burda et al.'s 784-200-200-50 tanh
# architecture, dynamically binarized MNIST, batch 100 (600 steps per epoch), Adam 1e-3 constant then a
# cosine down to 1e-4 over the last 30% of the run (the configs' schedule); test NLL estimated with k=5000
# importance samples on the full 10k test split.
# Budgets (steps) can be changed with VAE_STEPS, IWAE5_STEPS, IWAE50_STEPS, VAE_LONG_STEPS, IWAE5_LONG_STEPS,
# IWAE5_XLONG_STEPS; the schedule follows the budget.
# A rerun resumes the runs in runs/burda_*: delete them to start over with other budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
VAE_STEPS=${VAE_STEPS:-240000}     # 400 epochs
IWAE5_STEPS=${IWAE5_STEPS:-180000} # 300 epochs
IWAE50_STEPS=${IWAE50_STEPS:-30000} # 50 epochs
VAE_LONG_STEPS=${VAE_LONG_STEPS:-1200000}  # 2000 epochs (Burda et al.: 3280); 0 skips this run
IWAE5_LONG_STEPS=${IWAE5_LONG_STEPS:-330000}  # 550 epochs; 0 skips this run
IWAE5_XLONG_STEPS=${IWAE5_XLONG_STEPS:-600000}  # 1000 epochs; 0 skips this run
# 10 update steps per jitted call (lax.scan): same numbers as single steps, less dispatch overhead on CPU.
common=(--no_progress --config.train.log_every=3000 --config.train.checkpoint_every=30000 --config.train.sample_every=0
        --config.train.steps_per_dispatch=10)
$PY train.py --config=configs/vae.py  --workdir=runs/burda_vae      "${common[@]}" --config.train.num_steps=$VAE_STEPS
$PY train.py --config=configs/iwae.py:k5  --workdir=runs/burda_iwae_k5  "${common[@]}" --config.train.num_steps=$IWAE5_STEPS
$PY train.py --config=configs/iwae.py:k50 --workdir=runs/burda_iwae_k50 "${common[@]}" --config.train.num_steps=$IWAE50_STEPS
runs=(burda_vae burda_iwae_k5 burda_iwae_k50)
if [ "$VAE_LONG_STEPS" -gt 0 ]; then
  $PY train.py --config=configs/vae.py --workdir=runs/burda_vae_2000ep "${common[@]}" --config.train.num_steps=$VAE_LONG_STEPS
  runs+=(burda_vae_2000ep)
fi
if [ "$IWAE5_LONG_STEPS" -gt 0 ]; then
  $PY train.py --config=configs/iwae.py:k5 --workdir=runs/burda_iwae_k5_550ep "${common[@]}" \
      --config.train.num_steps=$IWAE5_LONG_STEPS
  runs+=(burda_iwae_k5_550ep)
fi
if [ "$IWAE5_XLONG_STEPS" -gt 0 ]; then
  $PY train.py --config=configs/iwae.py:k5 --workdir=runs/burda_iwae_k5_1000ep "${common[@]}" \
      --config.train.num_steps=$IWAE5_XLONG_STEPS
  runs+=(burda_iwae_k5_1000ep)
fi
for run in "${runs[@]}"; do
  $PY eval.py --workdir=runs/$run --no_progress --config.eval.suites='("likelihood",)' --config.eval.num_importance_samples=5000
done
$PY -m gen_jax.report.nll_table "${runs[@]/#/runs/}" --out results/nll_mnist.md
cp runs/burda_vae/images/samples_$(printf "%07d" "$VAE_STEPS").png results/vae_mnist_samples.png
cp runs/burda_vae/images/interpolation_linear_$(printf "%07d" "$VAE_STEPS").png results/vae_mnist_interpolation.png
