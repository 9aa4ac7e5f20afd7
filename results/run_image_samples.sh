#!/usr/bin/env bash
# Reproduces the MNIST sample grids in results/: DCGAN (configs/gan.py) and VAE-GAN (configs/vaegan.py)
# trained for IMAGE_STEPS steps (default 1500) on MNIST with WIDTH base channels (default 32, a 2-core CPU
# budget; the configs' own default is 64): final EMA-generator samples, a spherical latent interpolation
# and VAE-GAN reconstructions (rows alternate: test image, reconstruction).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
IMAGE_STEPS=${IMAGE_STEPS:-1500}
WIDTH=${WIDTH:-32}
common=(--no_progress --config.train.num_steps=$IMAGE_STEPS --config.train.sample_every=$IMAGE_STEPS
        --config.train.checkpoint_every=$IMAGE_STEPS --config.train.log_every=100
        --config.model.g_width=$WIDTH --config.model.d_width=$WIDTH)
$PY train.py --config=configs/gan.py --workdir=runs/dcgan_mnist "${common[@]}"
$PY train.py --config=configs/vaegan.py --workdir=runs/vaegan_mnist "${common[@]}"
step=$(printf "%07d" "$IMAGE_STEPS")
cp runs/dcgan_mnist/images/samples_$step.png results/dcgan_mnist_samples.png
cp runs/dcgan_mnist/images/interpolation_spherical_$step.png results/dcgan_mnist_interpolation.png
cp runs/vaegan_mnist/images/samples_$step.png results/vaegan_mnist_samples.png
cp runs/vaegan_mnist/images/reconstructions_$step.png results/vaegan_mnist_reconstructions.png
