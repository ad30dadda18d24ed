#!/bin/bash
# Screening sweep of fit overrides on the demo configuration (tiny preset, 16 views, 128 px,
# 24 extreme novel views, simulated:medium), one seed, noisy fits only (no ceiling).
# usage: research/sweep_tiny.sh SEED NAME "--fit-set k=v ..." [NAME "..."]...
cd "$(dirname "$0")/.."
seed=$1; shift
while [ $# -gt 1 ]; do
  name=$1; sets=$2; shift 2
  python -m benchmarks.refine_quality --preset tiny --views 16 --resolution 128 --novel-views 24 --identities 1 \
    --seeds "$seed" --only-main --no-ceiling --workdir /tmp/h/work --out /tmp/h/sweep_${name}_s${seed}.json $sets \
    > /tmp/h/sweep_${name}_s${seed}.log 2>&1
  tail -1 /tmp/h/sweep_${name}_s${seed}.log | head -1
  grep "main/" /tmp/h/sweep_${name}_s${seed}.log | tail -1
done
