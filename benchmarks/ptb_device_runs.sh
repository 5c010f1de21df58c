#!/usr/bin/env bash
# On the device: the paper's PTB model, dense and coarse-then-dense, side by side on one GPU,
# at a stated shorter schedule (EPOCHS). PTB files are carried in .carry/ptb.
#   EPOCHS=13 BACKEND=torch bash benchmarks/ptb_device_runs.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSETRAIN_DATA=$PWD/.carry
EPOCHS=${EPOCHS:-13}
BACKEND=${BACKEND:-torch}
OUT=${OUT:-runs}
RUNS=${RUNS:-/tmp/ptb-runs}
for recipe in ptb-lm ptb-lm-coarse-dense; do
  timeout ${LIMIT:-540} python3 -m sparsetrain run recipes/$recipe.yaml --out "$RUNS" \
    --set train.epochs=$EPOCHS --set backend=$BACKEND > "$OUT/$recipe.log" 2>&1 &
done
wait
for recipe in ptb-lm ptb-lm-coarse-dense; do
  echo "== $recipe"; tail -4 "$OUT/$recipe.log"
  for f in summary.json metrics.jsonl; do cp "$RUNS/$recipe/$f" "$OUT/$recipe.$f"; done
  python3 - "$RUNS/$recipe/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({k: s[k] for k in s if k != "recipe"}, indent=1)[:1500])
PY
done
