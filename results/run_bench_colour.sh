#!/usr/bin/env bash
# Re-records results/bench_cpu_colour.md and .json: the CIFAR-10 colour rows of the training benchmark (issue 20),
# DCGAN (Radford et al., width 64) and the conv VAE (discretized logistic) at 32x32x3, batch 32 on CPU, beside
# PyTorch eager and torch.compile in their own processes (rounds alternating with JAX's; median per-round ratio).
# Needs the PyTorch CPU wheel (pip install -r requirements-bench.txt). Run it on a quiet machine: the report records
# the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. ${PYTHON:-python} -m gen_jax.bench \
  --configs=${ENTRIES:-dcgan_cifar10@32,conv_vae_cifar10@32} \
  --torch --torch_modes=${TORCH_MODES:-eager,compile} --repeats=3 --min_steps=3 --min_seconds=2 --warmup=1 \
  --json=results/bench_cpu_colour.json --markdown=results/bench_cpu_colour.md
