#!/usr/bin/env bash
# On the device (repo root): the paper's table sweeps, resumable across calls while the machine
# stays warm (run directories live in runs/, which travels back as runs.tgz without checkpoints).
#   bash benchmarks/device_tables.sh ptb      # Tables 1-2, PTB, shorter schedule (16 epochs)
#   bash benchmarks/device_tables.sh seq      # Tables 3-4: caption, translate (8 epochs)
# LIMIT seconds later every sweep gets SIGTERM: its runs checkpoint, and the same command
# resumes them. SMOKE=1 also runs one short translate and caption run first.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSETRAIN_DATA=$PWD/.carry
export SPARSETRAIN_CACHE=$PWD/runs/.cache
OUT=${OUT:-/tmp/out}; LIMIT=${LIMIT:-540}; JOBS=${JOBS:-6}
mkdir -p runs "$OUT"
PTB_SCHEDULE=(--set train.epochs=16 --set train.decay_after_epoch=4 --set train.lr_decay=0.7)
NMT_SCHEDULE=(--set train.epochs=8 --set train.decay_after_epoch=5 --set eval.every_epochs=4)
CAPTION_SCHEDULE=(--set eval.every_epochs=3)
sweep() { timeout -s TERM "$LIMIT" python3 -m sparsetrain sweep "recipes/$1.yaml" \
            --out "runs/$1" --jobs "$JOBS" "${@:2}" > "$OUT/$1.log" 2>&1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ "${SMOKE:-0}" = 1 ]; then
  for task in multi30k-nmt caption; do
    timeout 240 python3 -m sparsetrain run "recipes/$task.yaml" --out runs/smoke --name "$task" \
      --set backend=cupy --set train.steps=150 --set 'method={name: coarse, R: 8, S: 4}' \
      > "$OUT/smoke-$task.log" 2>&1 &
  done
fi
case "$1" in
  ptb) sweep table1 "${PTB_SCHEDULE[@]}" & sweep table2 "${PTB_SCHEDULE[@]}" & wait ;;
  seq) sweep table4 "${NMT_SCHEDULE[@]}" & sweep table3 "${CAPTION_SCHEDULE[@]}" & wait ;;
esac
wait
for log in "$OUT"/*.log; do echo "== $log"; tail -n 4 "$log"; done
tar czf "$OUT/runs-$1.tgz" --exclude=checkpoint.pt --exclude=.cache runs
for root in runs/table*; do [ -d "$root" ] && python3 -m sparsetrain table "$root"; done
