#!/usr/bin/env bash
# Reproduces results/dreg_mnist.md: IWAE k=5 trained with the reparameterized gradient of the bound
# (Burda et al.) and with the doubly reparameterized one (objective.gradient=dreg, Tucker et al. 2019): the same
# architecture, data and schedule as results/run_nll_benchmark.sh's IWAE rows (a shorter run), each seed trained
# with both estimators; test NLL with k=5000 on the full 10k test split.
# STEPS (default 30000 = 50 epochs) and SEEDS (default "0 1"; more: SEEDS="0 1 2") can be changed; a rerun
# resumes the runs in runs/dreg_*: delete them to start over with another budget.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${STEPS:-30000}
SEEDS=${SEEDS:-"0 1"}
common=(--no_progress --config.train.log_every=3000 --config.train.checkpoint_every=30000 --config.train.sample_every=0
        --config.train.eval_every=0 --config.train.steps_per_dispatch=10 --config.train.num_steps=$STEPS)
runs=()
for seed in $SEEDS; do
  for gradient in reparam dreg; do
    run=runs/dreg_k5_${gradient}_s$seed
    $PY train.py --config=configs/iwae.py:k5 --workdir=$run "${common[@]}" --config.seed=$seed \
        --config.objective.gradient=$gradient
    runs+=($run)
  done
done
for run in "${runs[@]}"; do
  $PY eval.py --workdir=$run --no_progress --config.eval.suites='("likelihood",)' --config.eval.num_importance_samples=5000
done
$PY -m gen_jax.eval.nll_table "${runs[@]}" --out results/dreg_mnist.md
