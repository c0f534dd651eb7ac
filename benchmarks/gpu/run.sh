#!/usr/bin/env bash
# The throughput engine on one GPU machine (issue 17): images/s, GPU use and per-stage time per command.
#
#   benchmarks/gpu/run.sh OUTDIR [BUDGET_S]
#
# Runs from a clean checkout with the system python3 (3.12, torch CUDA, numpy, scipy, scikit-image,
# tifffile, pandas, safetensors); it makes its own synthetic images and needs no data. Modules the
# machine lacks (imagecodecs, sqlalchemy, greenlet) are not needed: PNG overlays fall back to Pillow. Wheels
# put under a git-ignored .whl/ are installed into a private folder first, if any. Takes about BUDGET_S
# seconds (default 240: under 5 minutes on one H200) and writes 2 files to OUTDIR: results.json and log.txt.
# A check of the whole script on a CPU at toy size:
#
#   DEVICE=cpu TINY=1 PYTHON=.venv/bin/python benchmarks/gpu/run.sh /tmp/gpu-bench-check 60
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu/run.sh OUTDIR [BUDGET_S]}
BUDGET=${2:-240}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT/src" PYTHONUNBUFFERED=1
EXTRA=()
if [ -n "${TINY:-}" ]; then EXTRA+=(--tiny); fi
{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  echo "commit $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) 2>/dev/null
  if [ -d "$ROOT/.whl" ]; then
    SITE=$(mktemp -d /tmp/deepscope-site.XXXXXX)
    "$PY" -m pip install -q --no-index --no-deps --find-links "$ROOT/.whl" --target "$SITE" "$ROOT"/.whl/*.whl \
      && export PYTHONPATH="$PYTHONPATH:$SITE" || echo "could not install the wheels of .whl/; going on without them"
  fi
  "$PY" -c "import sys, importlib.util as u; print('python', sys.version.split()[0], 'missing:', [m for m in ('torch', 'numpy', 'scipy', 'skimage', 'tifffile', 'pandas', 'safetensors', 'PIL', 'imagecodecs', 'sqlalchemy') if u.find_spec(m) is None])"
  "$PY" "$ROOT/benchmarks/gpu/bench_gpu.py" --out "$OUT" --device "$DEVICE" --budget "$BUDGET" "${EXTRA[@]}"
  date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$OUT/log.txt"
