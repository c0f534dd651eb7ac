#!/usr/bin/env bash
# One GPU run: the generalist nuclei models (issue 15) and the single-pass counters (issue 16).
#
#   recipes/gpu/run.sh OUTDIR [BUDGET_S]
#
# Runs from a clean checkout with the system python3 (3.12, torch CUDA, numpy, scipy, scikit-image;
# nothing else needed) and reads only the packed data under .gpu/data (or $DEEPSCOPE_GPU_DATA), made by
#
#   .venv/bin/python recipes/pack_data.py --out .gpu/data --only quarter,dsb,other
#   PYTHONPATH=src .venv/bin/python recipes/pack_dots.py --data .gpu/data
#
# Every variant trains in its own process at the same time for BUDGET_S seconds (default 420; about
# 8.5 minutes in all on one H200). OUTDIR receives at most 6 files, each under 16 MiB: one tar per
# generalist variant, count-q.tar, summary.json and log.txt. recipes/finalize.py turns them into
# shipped models.
#
# Beside them, for the same BUDGET_S, the run that accumulates over sessions (issue 29; ACCUMULATE=
# turns it off) continues from its committed folder recipes/checkpoints/VARIANT/ into
# OUTDIR/checkpoints/VARIANT/ (4 small files and accumulate.log); copy that folder back over
# recipes/checkpoints/VARIANT/ and commit it, and the next chunk (CPU or GPU) goes on from there. Where its
# validation has risen, ship it again in the same session: accumulate.py VARIANT --export DIR --force, then
# finalize.py --only nuclei-fast --runs DIR (recipes/README.md). ACCUMULATE=count-bbbc005-ema continues the
# counter's fine-tune instead (its data: pack_data.py --only half as well; then accumulate.py count-bbbc005-ema
# --export DIR and finalize.py --only count-bbbc005 --weights DIR/count-bbbc005-ema, which installs it only if the
# whole count's validation MAE falls). A check of the whole script on a CPU at toy size:
#
#   DEVICE=cpu TINY=1 PYTHON=.venv/bin/python recipes/gpu/run.sh /tmp/gpu-check
set -euo pipefail
OUT=${1:?usage: recipes/gpu/run.sh OUTDIR [BUDGET_S]}
BUDGET=${2:-420}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${DEEPSCOPE_GPU_DATA:-$ROOT/.gpu/data}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
ACC=${ACCUMULATE-nuclei-student-b8}
MODELS=${MODELS:-nuclei-flow-b32,nuclei-flow-b16,nuclei-dist-b16,count-q-dots-b16,count-q-dots-b32,count-q-b16}
WORK=${WORK:-$(mktemp -d /tmp/deepscope-gpu-run.XXXXXX)}
EXTRA=()
if [ -n "${TINY:-}" ]; then EXTRA+=(--tiny); fi
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/src" PYTHONUNBUFFERED=1
for f in bbbc005_quarter dsb_images_flat he_images_flat bf_images_flat bbbc005_dots; do
  [ -f "$DATA/$f.npy.xz" ] || { echo "missing $DATA/$f.npy.xz: run the pack commands in this script's header" >&2; exit 2; }
done
{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) 2>/dev/null
  "$PY" -c "import sys, torch, numpy, scipy, skimage; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cores', __import__('os').cpu_count())"
  if [ -n "$ACC" ]; then  # the accumulating run, in the background for the same budget (a toy run of its own when TINY)
    mkdir -p "$OUT/checkpoints"
    if [ -z "${TINY:-}" ]; then cp -r "$ROOT/recipes/checkpoints/$ACC" "$OUT/checkpoints/" 2>/dev/null || true; fi
    "$PY" "$ROOT/recipes/accumulate.py" "$ACC" --data "$DATA" --folder "$OUT/checkpoints/$ACC" --device "$DEVICE" \
        --budget "$BUDGET" ${TINY:+--tiny --max-epochs 1 --steps-per-epoch 2} > "$OUT/checkpoints/accumulate.log" 2>&1 &
    ACC_PID=$!
  fi
  "$PY" "$ROOT/recipes/zoo.py" train --data "$DATA" --out "$WORK" --pack "$OUT" --device "$DEVICE" \
      --budget "$BUDGET" --grace 75 --models "$MODELS" "${EXTRA[@]}"
  if [ -n "$ACC" ]; then wait "$ACC_PID" && tail -n 1 "$OUT/checkpoints/accumulate.log" || echo "accumulate failed: see checkpoints/accumulate.log"; fi
  date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$OUT/log.txt"
