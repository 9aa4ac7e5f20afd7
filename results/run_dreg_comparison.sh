#!/usr/bin/env bash
# Reproduces results/dreg_mnist.md: IWAE k=5 trained with the reparameterized gradient of the bound
# (Burda et al.) and with the doubly reparameterized one (objective.gradient=dreg, Tucker et al. 2019): the same
# architecture, data and schedule as results/run_nll_benchmark.sh's IWAE rows (a shorter run), each seed trained
# with both estimators; test NLL with k=5000 on the full 10k test split.
# Then k=50 (seed 0, 50 epochs): DReG beside the reparameterized k=50 run of results/run_nll_benchmark.sh
# (runs/burda_iwae_k50, same command; trained here if missing).
# STEPS (default 30000 = 50 epochs), SEEDS (default "0 1"; more: SEEDS="0 1 2") and K50_STEPS (default 30000; 0
# skips k=50) can be changed; a rerun resumes the runs in runs/dreg_*: delete them to start over with another budget.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${STEPS:-30000}
SEEDS=${SEEDS:-"0 1"}
K50_STEPS=${K50_STEPS:-30000}
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
if [ "$K50_STEPS" -gt 0 ]; then   # the arguments of results/run_nll_benchmark.sh
  k50=(--no_progress --config.train.log_every=3000 --config.train.checkpoint_every=30000 --config.train.sample_every=0
       --config.train.steps_per_dispatch=10 --config.train.num_steps=$K50_STEPS)
  $PY train.py --config=configs/iwae.py:k50 --workdir=runs/burda_iwae_k50 "${k50[@]}"
  $PY train.py --config=configs/iwae.py:k50,dreg --workdir=runs/dreg_k50_dreg_s0 "${k50[@]}"
  runs+=(runs/burda_iwae_k50 runs/dreg_k50_dreg_s0)
fi
for run in "${runs[@]}"; do
  $PY eval.py --workdir=$run --no_progress --config.eval.suites='("likelihood",)' --config.eval.num_importance_samples=5000
done
$PY -m gen_jax.report.nll_table "${runs[@]}" --out results/dreg_mnist.md
