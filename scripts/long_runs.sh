#!/usr/bin/env bash
# The project's long CPU runs, resumed in order (each step skips what is already done):
#   1. the Fashion-MNIST study (cpu variant), seed by seed  -> results/study_fashion_mnist/ledger
#   2. the CIFAR-10 feature classifier if classifiers/cifar10 is missing: the default recipe (half-width ResNet-9,
#      28 epochs, flip-averaged read-out; runs/feature_net_cifar10_e28, resumable per epoch) -> classifiers/cifar10
#   3. the CIFAR-10 study (cpu variant), seed by seed       -> results/study_cifar10/ledger
# A classifier that ends below its accuracy target is reported and the script goes on (the CIFAR-10 study then
# stops at once, naming the classifier). One copy runs at a time (a lock next to the checkout).
# A session that ends part-way loses at most one epoch or one run's progress since its last checkpoint; rerun
# the script in the next session. It commits nothing: commit each new ledger record (and classifiers/cifar10 once
# written) yourself; never commit runs/.
#
# The code runs from a git worktree snapshot of this checkout's HEAD (default ../study_tree), not from the working
# tree: a study imports modules lazily, and a half-edited file would crash it hours in. A study that already has
# records runs from the commit that made the newest of them (its code is in every record), so a study spread over
# sessions is not measured by two versions of the evaluation; STUDY_COMMIT=HEAD overrides. Outputs (runs/,
# results/, classifiers/) go to this checkout by absolute paths.
#
#   scripts/long_runs.sh                  everything, in the background: nohup scripts/long_runs.sh > long_runs.log &
#   STEPS="classifier fashion_mnist" scripts/long_runs.sh       some steps only
#   DRY_RUN=1 scripts/long_runs.sh        print the commands only
# Needs the data (GEN_JAX_DATA_DIR, default ../shared/data) and the venv (.venv, or PYTHON=...).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tree="${TREE:-$(dirname "$repo")/study_tree}"
data="${GEN_JAX_DATA_DIR:-$(dirname "$repo")/shared/data}"
python="${PYTHON:-$repo/.venv/bin/python}"
steps="${STEPS:-fashion_mnist classifier cifar10}"
export GEN_JAX_DATA_DIR="$data"

run() {   # echo, then run unless DRY_RUN
  echo "+ $*" >&2
  if [ -z "${DRY_RUN:-}" ]; then "$@"; fi
}

in_tree() {   # the same, from the snapshot
  echo "+ (cd $tree && $*)" >&2
  if [ -z "${DRY_RUN:-}" ]; then (cd "$tree" && "$@"); fi
}

# A second copy would move the snapshot under the first one's running study: refuse it.
exec 9>"$(dirname "$repo")/.long_runs.lock"
flock -n 9 || { echo "scripts/long_runs.sh is already running (lock $(dirname "$repo")/.long_runs.lock)" >&2; exit 1; }

head="$(git -C "$repo" rev-parse HEAD)"
if [ ! -e "$tree/.git" ]; then
  run git -C "$repo" worktree add --detach "$tree" "$head"
elif [ -n "$(git -C "$tree" status --porcelain --untracked-files=no)" ]; then
  echo "$tree has local changes; not moving it to $head (commit or discard them, or set TREE=...)" >&2
  exit 1
else
  run git -C "$tree" checkout -q --detach "$head"
fi
[ -e "$tree/.venv" ] || run ln -s "$repo/.venv" "$tree/.venv"

classifier() {
  if [ -f "$repo/classifiers/cifar10/classifier.json" ]; then
    echo "classifier: $repo/classifiers/cifar10 exists" >&2
  else
    # The committed classifier's command: 28 epochs reach 89.50% read once, 90.40% flip-averaged (target 90%; NOTES.md)
    in_tree "$python" -m gen_jax.eval.train_feature_net --dataset=cifar10 --data_dir="$data" --epochs=28 \
      --work_dir="$repo/runs/feature_net_cifar10_e28" --out="$repo/classifiers/cifar10" \
      || echo "classifier: training failed or ended below its target (see above); going on" >&2
  fi
  # The snapshot reads classifiers/ from its own tree: give it the new one (until it is committed and in HEAD).
  if [ -f "$repo/classifiers/cifar10/classifier.json" ] && [ ! -e "$tree/classifiers/cifar10" ]; then
    run cp -r "$repo/classifiers/cifar10" "$tree/classifiers/cifar10"
  fi
}

study_commit() {   # study_commit NAME: the newest commit among the records of the study's highest seed ('' if none)
  local commits
  commits="$("$python" - "$repo/results/study_$1/ledger" <<'PY'
import json, pathlib, sys
records = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*/record.json")]
if records:
  top = max(r["seed"] for r in records)
  print(" ".join(sorted({r["code"]["commit"] for r in records if r["seed"] == top and r.get("code", {}).get("commit")})))
PY
)"
  [ -z "$commits" ] && return 0
  for c in $commits; do
    git -C "$repo" cat-file -e "$c^{commit}" 2>/dev/null || {
      echo "study $1: its records were made by commit ${c:0:10}, which this clone does not have; fetch it, or set" \
           "STUDY_COMMIT=HEAD to go on with ${head:0:10}" >&2
      return 1
    }
  done
  git -C "$repo" log -1 --no-walk --format=%H $commits   # the most recent of them
}

study() {   # study() NAME: studies/NAME.py, seeds 0 1 2 in turn, then its report rebuilt by HEAD's report code
  # A study in progress goes on with the code of its newest records, so every seed is trained and measured alike;
  # STUDY_COMMIT=HEAD (or another commit) overrides that, e.g. for a fix the remaining runs need.
  local pin
  pin="${STUDY_COMMIT:-}"
  [ -z "$pin" ] && pin="$(study_commit "$1")"
  [ "$pin" = HEAD ] && pin="$head"
  if [ -n "$pin" ] && [ "$pin" != "$head" ]; then
    echo "study $1: continuing with commit ${pin:0:10}, which made its newest records (STUDY_COMMIT=HEAD: use ${head:0:10})" >&2
    run git -C "$tree" checkout -q --detach "$pin"
  fi
  for seed in 0 1 2; do
    in_tree "$python" -m gen_jax.study "studies/$1.py" --out "$repo/results/study_$1" \
      --workdirs "$repo/runs/studies" --seeds "$seed" --no_progress
  done
  if [ -n "$pin" ] && [ "$pin" != "$head" ]; then   # the records are the pinned code's; the report is HEAD's
    run git -C "$tree" checkout -q --detach "$head"
    in_tree "$python" -m gen_jax.study "studies/$1.py" --out "$repo/results/study_$1" --aggregate_only
  fi
}

for step in $steps; do
  case "$step" in
    classifier) classifier ;;
    fashion_mnist|cifar10|mnist) study "$step" ;;
    *) echo "unknown step $step (classifier, mnist, fashion_mnist, cifar10)" >&2; exit 2 ;;
  esac
done
