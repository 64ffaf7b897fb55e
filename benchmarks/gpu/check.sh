#!/usr/bin/env bash
# Every GPU option of ftsweep in one script (a lent GPU machine has minutes, not hours).
# Usage, from the repository root on a CUDA machine:
#   bash benchmarks/gpu/check.sh [WHEELHOUSE]
# WHEELHOUSE (default .whl when it exists): wheels from scripts/wheelhouse.py for this
# machine's Python, installed offline next to its own torch; without one, the current
# environment must already have ftsweep's dependencies, bitsandbytes and deepspeed.
# Prints one table and writes gpu-check.md / gpu-check.json under $OUT (or .).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WHEELS=${1:-.whl}
if [ -d "$WHEELS" ]; then
  SITE=${SITE:-/tmp/ftsweep-site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
exec "$PY" benchmarks/gpu/check.py --out "${OUT:-.}" "${@:2}"
