#!/usr/bin/env bash
# On the device machine (repo root): GPU tests, then the benchmark; logs and JSON to $OUT.
# Usage: bash benchmarks/device_check.sh [extra `sparsetrain bench` flags]
set -o pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q tests/test_kernels_units.py tests/test_kernels_inputs.py \
    tests/test_kernels_layer.py tests/test_lstm_layer.py tests/test_sparsify_methods.py \
    tests/test_dnet_histograms.py tests/test_bench.py 2>&1 | tee "$OUT/tests.log" | tail -25
python3 benchmarks/ceilings.py 2>&1 | tail -12
python3 benchmarks/kernel_times.py large xl ptb nmt > "$OUT/kernel_times.log" 2>&1; grep "==" "$OUT/kernel_times.log"
python3 benchmarks/coarse_step.py > "$OUT/coarse_step.log" 2>&1; grep "fused" "$OUT/coarse_step.log" | head -8
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    python3 -c "from sparsetrain.cli import main; main()" bench --out "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.log"
fi
