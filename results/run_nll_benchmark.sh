#!/usr/bin/env bash
# Reproduces results/nll_mnist.md: MLP VAE and IWAE (k=5, k=50), Burda et al.'s 784-200-200-50 tanh
# architecture, dynamically binarized MNIST, Burda's 3^i learning-rate stages scaled to the step budget,
# test NLL estimated with k=5000 importance samples on the full 10k test split.
# Budgets (steps) can be changed with VAE_STEPS, IWAE5_STEPS, IWAE50_STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
VAE_STEPS=${VAE_STEPS:-60000}
IWAE5_STEPS=${IWAE5_STEPS:-60000}
IWAE50_STEPS=${IWAE50_STEPS:-20000}
common=(--no_progress --config.train.log_every=1000 --config.train.checkpoint_every=10000 --config.train.sample_every=0)
$PY train.py --config=configs/vae.py  --workdir=runs/burda_vae      "${common[@]}" --config.train.num_steps=$VAE_STEPS --config.optimizer.schedule=burda
$PY train.py --config=configs/iwae.py:k5  --workdir=runs/burda_iwae_k5  "${common[@]}" --config.train.num_steps=$IWAE5_STEPS
$PY train.py --config=configs/iwae.py:k50 --workdir=runs/burda_iwae_k50 "${common[@]}" --config.train.num_steps=$IWAE50_STEPS
for run in burda_vae burda_iwae_k5 burda_iwae_k50; do
  $PY eval.py --workdir=runs/$run --no_progress --config.eval.num_importance_samples=5000
done
$PY -m gen_jax.eval.nll_table runs/burda_vae runs/burda_iwae_k5 runs/burda_iwae_k50 --out results/nll_mnist.md
cp runs/burda_vae/images/samples_$(printf "%07d" "$VAE_STEPS").png results/vae_mnist_samples.png
cp runs/burda_vae/images/interpolation_linear_$(printf "%07d" "$VAE_STEPS").png results/vae_mnist_interpolation.png
