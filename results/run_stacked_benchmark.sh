#!/usr/bin/env bash
# Reproduces results/stacked_mnist_modes.md: the mode-collapse test on Stacked MNIST (three MNIST digits
# as R, G, B channels: 1000 modes; Metz et al. 2017, PacGAN) for four GAN objectives with the same DCGAN
# networks at WIDTH base channels (default 32, a 2-core CPU budget) and seed 0: configs/gan.py:stacked,<objective>.
# STEPS generator steps (default 4000) for the n_critic=1 objectives and STEPS_WGAN (default 1000, i.e. 5000
# critic steps) for WGAN-GP. Scored by eval.py's `modes` group: NUM_SAMPLES samples (default 26000, the
# PacGAN protocol) from the EMA generator; mode of a sample = the MNIST feature classifier's digits of its three
# channels; modes covered = modes with at least one sample; KL of the mode histogram to uniform.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${STEPS:-4000}
STEPS_WGAN=${STEPS_WGAN:-1000}
WIDTH=${WIDTH:-32}
NUM_SAMPLES=${NUM_SAMPLES:-26000}
runs=()
for obj in nonsaturating r1 hinge wgan_gp; do
  variant=stacked; [ "$obj" != nonsaturating ] && variant=stacked,$obj
  steps=$STEPS; [ "$obj" = wgan_gp ] && steps=$STEPS_WGAN
  $PY train.py --config=configs/gan.py:$variant --workdir=runs/stacked_$obj --no_progress \
    --config.train.num_steps=$steps --config.train.sample_every=$steps --config.train.checkpoint_every=1000 \
    --config.train.log_every=100 --config.model.g_width=$WIDTH --config.model.d_width=$WIDTH
  $PY eval.py --workdir=runs/stacked_$obj --no_progress --config.eval.suites="('modes',)" \
    --config.eval.num_samples=$NUM_SAMPLES > /dev/null
  runs+=(runs/stacked_$obj)
done
$PY -m gen_jax.report.mode_table "${runs[@]}" --out results/stacked_mnist_modes.md
cp runs/stacked_nonsaturating/images/samples_$(printf "%07d" "$STEPS").png results/stacked_mnist_dcgan_samples.png
