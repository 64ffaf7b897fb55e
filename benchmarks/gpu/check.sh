#!/usr/bin/env bash
# The GPU checks in one short script (a lent GPU machine has minutes, not hours):
# QLoRA, bf16 LoRA with gradient checkpointing, and DeepSpeed ZeRO-2, through ftsweep.
# Usage, from the repository root on a CUDA machine: bash benchmarks/gpu/check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { python3 -m venv .venv && PY=.venv/bin/python; }
"$PY" -m pip install -q -e . bitsandbytes deepspeed 2>&1 | tail -2
WS=${WS:-/tmp/ftsweep-gpu}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
for f in benchmarks/gpu/gpu.yaml benchmarks/gpu/zero2.yaml; do
  /usr/bin/time -f "$f: %e s" "$PY" -m ftsweep.cli --workspace "$WS" launch "$f"
done
"$PY" -m ftsweep.cli --workspace "$WS" query "select experiment, method, status,
  round(trainable_pct, 2) as trainable_pct, round(peak_memory_mb) as peak_mb,
  round(tokens_per_s) as tok_s, round(train_time_s, 1) as train_s,
  final_eval->>'exact_match' as exact_match, failure_cause from runs order by experiment"
