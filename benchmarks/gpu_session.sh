#!/usr/bin/env bash
# The GPU checks of one lent CUDA machine, in one go (docs/performance.md, "GPU"):
#   1. install carried wheels (.whl/: gsplat 1.5.3 + plyfile; the machine reaches no registry),
#   2. compile gsplat's CUDA extension (timed on its own: the one-time JIT),
#   3. the CUDA tests (gsplat backend vs the frozen torch reference, GPU extraction parity),
#   4. benchmarks: one head refined end to end at the GPU configuration, joint vs RGB-only fits.
# Each stage has its own time limit, so one failure still leaves the others' logs and JSON in $OUT.
#   OUT=/path bash benchmarks/gpu_session.sh [stages...]   (stages: tests refine ratio speed; default all)
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
export NUMBA_CACHE_DIR=/tmp/numba_cache
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
stages=${*:-"tests refine ratio speed"}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1 | tee -a "$OUT/gpu.txt"

log "gsplat JIT compile"
t0=$(date +%s)
timeout 400 python3 -c "
import time; t=time.perf_counter()
from gsplat.cuda._backend import _C
print('gsplat extension loaded', _C is not None, round(time.perf_counter()-t, 1), 's')
" 2>&1 | tail -5 | tee -a "$OUT/session.log"
log "JIT stage took $(( $(date +%s) - t0 )) s"

for stage in $stages; do
  t0=$(date +%s)
  case $stage in
    tests)
      log "CUDA tests"
      timeout 240 python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs \
        tests/splat/test_rasterize_gsplat.py tests/splat/test_rasterize.py tests/splat/test_sh.py \
        tests/splat/test_fit.py tests/splat/test_model_joint.py tests/synth/test_synth_render.py \
        tests/extract/test_extract_labels.py 2>&1 | tail -25 | tee "$OUT/pytest_cuda.log" ;;
    refine)
      log "refine at the GPU configuration (48 views 512^2, 500 extreme views)"
      timeout 300 python3 -m benchmarks.gpu_refine_check --device cuda --views 48 --resolution 512 \
        --novel-views 500 --preset gpu --out "$OUT/gpu_refine.json" \
        2>&1 | tail -60 | tee "$OUT/refine.log" ;;
    ratio)
      log "joint vs RGB-only fit (fit_speed.py)"
      timeout 200 python3 -m benchmarks.fit_speed --device cuda --preset fast --views 48 --resolution 512 \
        --modes ${RATIO_MODES:-scaled:0.1,rgb,full,none} --out "$OUT/fit_speed_cuda.json" --work /tmp/fit_speed_cuda \
        2>&1 | tail -30 | tee "$OUT/ratio.log" ;;
    speed)
      if [ -f benchmarks/refine_speed.py ]; then
        log "refine_speed.py --device cuda"
        timeout 300 python3 -m benchmarks.refine_speed --device cuda --out "$OUT/refine_speed_cuda.json" \
          ${REFINE_SPEED_ARGS:-} 2>&1 | tail -40 | tee "$OUT/speed.log"
      fi ;;
    *) log "unknown stage $stage" ;;
  esac
  log "stage $stage took $(( $(date +%s) - t0 )) s"
done
