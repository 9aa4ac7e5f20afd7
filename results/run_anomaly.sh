#!/usr/bin/env bash
# One-class anomaly detection on MNIST (the 10-class protocol): results/anomaly_mnist_*.md.
# For each digit c, a model with the source run's config is trained on the training images of c only
# (ANOMALY_STEPS steps), then scores all 10000 test images; AUROC of each score with anomaly = label != c.
#   VAE (runs/burda_vae from results/run_nll_benchmark.sh): reconstruction error and -ELBO
#   VAE-GAN (runs/vaegan_mnist from results/run_image_samples.sh): reconstruction error and -D(x)
# A missing source run is trained first for a few steps only to record its config (the protocol trains its own).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
ANOMALY_STEPS=${ANOMALY_STEPS:-3000}
VAEGAN_ANOMALY_STEPS=${VAEGAN_ANOMALY_STEPS:-500}
[ -f runs/burda_vae/config.json ] || $PY train.py --config=configs/vae.py --workdir=runs/burda_vae \
    --config.train.num_steps=10 --no_progress
$PY eval.py --anomaly --workdir=runs/burda_vae --steps=$ANOMALY_STEPS --no_progress
cp runs/burda_vae/anomaly/anomaly.md results/anomaly_mnist_vae.md
if [ "${SKIP_VAEGAN:-0}" != 1 ]; then
  [ -f runs/vaegan_mnist/config.json ] || $PY train.py --config=configs/vaegan.py --workdir=runs/vaegan_mnist \
      --config.model.g_width=32 --config.model.d_width=32 --config.train.num_steps=10 --no_progress
  $PY eval.py --anomaly --workdir=runs/vaegan_mnist --steps=$VAEGAN_ANOMALY_STEPS --no_progress
  cp runs/vaegan_mnist/anomaly/anomaly.md results/anomaly_mnist_vaegan.md
fi
