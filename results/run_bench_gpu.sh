#!/usr/bin/env bash
# GPU figures of issue 5, for a session or a user with an NVIDIA GPU (none was lent to the sessions that
# wrote this repo). Install first: pip install -r requirements.txt && pip install -U "jax[cuda12]"
# Writes $OUT/bench_gpu_float32.{md,json} and $OUT/bench_gpu_bfloat16.{md,json}: every main config at its
# own batch and at GPU-sized batches, in float32 and in bfloat16 mixed precision (bf16 compute, float32
# master weights and loss), each against the matmul peak of its own dtype (8192^2, gen_jax/bench/peak.py),
# plus the bounded-memory NLL rows; then $OUT/bench_gpu_scan.{md,json}: the MLP VAE with 20 steps per
# dispatch (lax.scan), where a GPU step is short enough for dispatch to matter. Check the printed device line
# says gpu. ENTRIES / OUT / PYTHON override the defaults (a CPU smoke run: ENTRIES=mlp_vae@32 OUT=/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results}
ENTRIES=${ENTRIES:-mlp_vae,conv_vae,dcgan,resnet_gan,vaegan,mlp_vae@4096,conv_vae@1024,dcgan@512,vaegan@256}
ROUNDS=${ROUNDS:---repeats=5 --min_steps=50 --min_seconds=3}
for dtype in float32 bfloat16; do
  PYTHONPATH=. ${PYTHON:-python} -m gen_jax.bench --configs="$ENTRIES" --compute_dtype=$dtype $ROUNDS \
    --eval_memory --eval_ks=500,5000 --json="$OUT/bench_gpu_$dtype.json" --markdown="$OUT/bench_gpu_$dtype.md"
done
PYTHONPATH=. ${PYTHON:-python} -m gen_jax.bench --configs="${ENTRIES%%,*}" --compute_dtype=bfloat16 \
  --steps_per_dispatch=20 $ROUNDS --json="$OUT/bench_gpu_scan.json" --markdown="$OUT/bench_gpu_scan.md"
