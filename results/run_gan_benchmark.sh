#!/usr/bin/env bash
# Reproduces results/grid25_modes.md (every GAN objective on the 25-Gaussian grid, same networks,
# seed 0, eval.py with 2500 samples) and the MNIST sample grids results/dcgan_mnist_samples.png and
# results/vaegan_mnist_*.png. Budgets can be changed with IMAGE_STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
IMAGE_STEPS=${IMAGE_STEPS:-3000}
runs=()
for obj in r1 nonsaturating minimax wgan wgan_gp hinge lsgan; do
  $PY train.py --config=configs/gan_toy.py:grid,$obj --workdir=runs/grid25_$obj --no_progress
  $PY eval.py --workdir=runs/grid25_$obj --no_progress > /dev/null
  runs+=(runs/grid25_$obj)
done
$PY -m gen_jax.eval.mode_table "${runs[@]}" --out results/grid25_modes.md
cp runs/grid25_r1/eval/samples_*.png results/grid25_r1_samples.png
cp runs/grid25_nonsaturating/eval/samples_*.png results/grid25_nonsaturating_samples.png

common=(--no_progress --config.train.num_steps=$IMAGE_STEPS --config.train.sample_every=$IMAGE_STEPS
        --config.train.checkpoint_every=$IMAGE_STEPS --config.train.log_every=100)
$PY train.py --config=configs/gan.py --workdir=runs/dcgan_mnist "${common[@]}"
$PY train.py --config=configs/vaegan.py --workdir=runs/vaegan_mnist "${common[@]}"
step=$(printf "%07d" "$IMAGE_STEPS")
cp runs/dcgan_mnist/images/samples_$step.png results/dcgan_mnist_samples.png
cp runs/dcgan_mnist/images/interpolation_spherical_$step.png results/dcgan_mnist_interpolation.png
cp runs/vaegan_mnist/images/samples_$step.png results/vaegan_mnist_samples.png
cp runs/vaegan_mnist/images/reconstructions_$step.png results/vaegan_mnist_reconstructions.png
