#!/usr/bin/env bash
# Re-records results/bench_cpu.md and results/bench_cpu.json (the training benchmark, issues 5 and 22) on this CPU.
# Needs the PyTorch CPU wheel for the reference columns: pip install -r requirements-bench.txt
# PyTorch runs in its own processes (eager and torch.compile) at its library defaults, in rounds alternating with
# JAX's; run it on a quiet machine (the report records the load average: PyTorch's default OpenMP threads collapse
# when the cores are oversubscribed). Short rounds (>= 3 steps and >= 2 s, 3 rounds) so that the whole run stays
# within about 10 minutes on 2 cores (not yet timed on a quiet machine; inductor's compiles are most of it);
# resnet_gan runs at batch 16 on CPU. TORCH_MODES=eager skips torch.compile.
# The CIFAR-10 colour rows (issue 20; need the CIFAR-10 data, not yet recorded) are an option:
#   ENTRIES=mlp_vae,conv_vae,dcgan,resnet_gan@16,vaegan,mlp_vae@1000,dcgan_cifar10@32,conv_vae_cifar10@32 \
#     results/run_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. ${PYTHON:-python} -m gen_jax.bench \
  --configs=${ENTRIES:-mlp_vae,conv_vae,dcgan,resnet_gan@16,vaegan,mlp_vae@1000} \
  --torch --torch_modes=${TORCH_MODES:-eager,compile} --repeats=3 --min_steps=3 --min_seconds=2 --warmup=1 \
  --eval_memory --eval_ks=500,5000 --dot_ceiling \
  --scaling=1,2,4,8 --scaling_configs=mlp_vae@128 \
  --json=results/bench_cpu.json --markdown=results/bench_cpu.md
