#!/usr/bin/env bash
# Produces results/bench_cpu.md and results/bench_cpu.json (the training benchmark of issue 5 on this CPU).
# Needs the PyTorch CPU wheel for the reference column: pip install -r requirements-bench.txt
# Short rounds (>= 3 steps and >= 3 s, 2 rounds) so that the slow conv configs finish on a shared 2-core
# machine; resnet_gan runs at batch 16 (its main batch 64 with 5 critic steps takes tens of seconds per step
# on XLA:CPU). Takes ~15-30 minutes there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. ${PYTHON:-python} -m gen_jax.bench \
  --configs=mlp_vae,conv_vae,dcgan,resnet_gan@16,vaegan,mlp_vae@1000 \
  --torch --repeats=3 --min_steps=3 --min_seconds=3 --warmup=1 \
  --eval_memory --eval_ks=500,5000 --dot_ceiling \
  --scaling=1,2,4,8 --scaling_configs=mlp_vae@128 \
  --json=results/bench_cpu.json --markdown=results/bench_cpu.md
