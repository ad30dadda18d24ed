#!/usr/bin/env bash
# The paper loop (benchmarks/paper_loop.py) on one lent CUDA machine, three seeds at once.
#
#   OUT=/path bash benchmarks/gpu_paper_loop.sh [deadline_s]
#
# Configuration $CONFIG (default `cpu3`: 128 px inputs, per-view label weights in the refine, 2500
# fine-tune steps at frontal mix 0.6, as the published CPU run) with the overrides $A_SET (default
# none); each seed runs in its own process (its own 4 torch
# threads, the GPU shared). When a seed of A is finished and time is left, variant B
# ($B_SET, default 5000 fine-tune steps) reuses that seed's finished stages (`paper_loop.py --reuse`:
# all before the fine-tunes when B differs from A in fine-tune fields only; the baseline, parsed
# multiview scenes and eval set when B also changes a refine field) and runs the rest. A watchdog stops everything at
# deadline_s (default 480) with SIGTERM (trainings save their resume state). The device returns
# only a few files from $OUT, so per-seed logs and results stay in $WORK/out and $OUT receives
# the pooled results JSON of A and B, the session log and one tarball of everything small
# (every stage record, results, logs, training curves) -- `paper_loop.py --summarize` rebuilds
# the results from the stage records anywhere. Work directories stay in $WORK on the machine,
# so a second call on the same warm machine resumes them.
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
DEADLINE=${1:-480}
WORK=${WORK:-/tmp/paper_loop_gpu}
A_SET=${A_SET-}
B_SET=${B_SET-"ft_iters=5000"}
SEEDS=${SEEDS:-"0 1 2"}
CONFIG=${CONFIG:-cpu3}
DEVICE=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba_cache}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
if compgen -G ".whl/*.whl" >/dev/null && [ ! -d /tmp/site/gsplat ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src
RES="$WORK/out"
mkdir -p "$RES"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/paper_loop_session.log"; }
sets() { for kv in $1; do printf -- '--set %s ' "$kv"; done; }

one_seed() {
  local s=$1
  python3 -m benchmarks.paper_loop --config "$CONFIG" $(sets "$A_SET") --seeds "$s" --device "$DEVICE" --threads 4 \
    --work "$WORK/A" --results "$RES/paper_loop_gpu_A_s$s.json" > "$RES/paper_loop_A_s$s.log" 2>&1 || return 1
  python3 -m benchmarks.paper_loop --config "$CONFIG" $(sets "$B_SET") --seeds "$s" --device "$DEVICE" --threads 4 \
    --work "$WORK/B" --results "$RES/paper_loop_gpu_B_s$s.json" --reuse "$WORK/A" > "$RES/paper_loop_B_s$s.log" 2>&1
}

log "paper loop ($CONFIG, $DEVICE) on $(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")'), seeds $SEEDS, A: $A_SET, B: $B_SET, deadline ${DEADLINE}s"
pids=()
for s in $SEEDS; do one_seed "$s" & pids+=($!); done
( sleep "$DEADLINE"; log "deadline: stopping"; pkill -TERM -f benchmarks.paper_loop ) &
watchdog=$!
wait "${pids[@]}"
kill "$watchdog" 2>/dev/null
# the pooled summaries over whatever seeds finished (finished stages are skipped)
seeds_csv=$(echo $SEEDS | tr ' ' ',')
for v in A B; do
  set_v=$([ $v = A ] && echo "$A_SET" || echo "$B_SET")
  [ -d "$WORK/$v" ] && timeout 60 python3 -m benchmarks.paper_loop --config "$CONFIG" $(sets "$set_v") --seeds "$seeds_csv" \
    --device "$DEVICE" --work "$WORK/$v" --results "$OUT/paper_loop_gpu_$v.json" --summarize \
    > "$RES/paper_loop_${v}_summary.log" 2>&1 < /dev/null &
done
wait
tail -n 3 "$RES"/paper_loop_*_s*.log | tee -a "$OUT/paper_loop_session.log"
(cd / && tar czf "$OUT/paper_loop_small_files.tgz" --exclude='*.pth' --exclude='*.pt' --exclude='*.png' \
   --exclude='*.jpg' --exclude='*.ply' "${WORK#/}" 2>/dev/null)
log "done"
