#!/usr/bin/env bash
# On the device machine (repo root): GPU tests and the bench of the working tree, then the
# committed code (in .ab/old) against the working tree, run in turn on one machine: benches,
# graph replays (replay_ms.py, two rounds) and host timelines. Prepare .ab/old here first and
# carry it (.ab/ is in .git/info/exclude):
#   mkdir -p .ab/old && git archive HEAD sparsetrain benchmarks | tar -x -C .ab/old
# Logs and JSON to $OUT (at most 8 files come back).
export PYTHONUNBUFFERED=1; B='from sparsetrain.cli import main; main()'
S="--shape large --shape xl --shape ptb --shape nmt"
PYTHONPATH=. python3 -m pytest -q tests/test_kernels_units.py tests/test_kernels_inputs.py \
    tests/test_kernels_layer.py tests/test_lstm_layer.py tests/test_sparsify_methods.py \
    tests/test_dnet_histograms.py tests/test_bench.py > $OUT/gpu_tests.log 2>&1
tail -1 $OUT/gpu_tests.log
PYTHONPATH=. python3 -c "$B" bench $S --out $OUT/bench.json > $OUT/bench.log 2>&1
(cd .ab/old && PYTHONPATH=. python3 -c "$B" bench $S --methods dense,coarse,cudnn \
    --out /tmp/old.json > /tmp/old.log 2>&1); cp /tmp/old.json $OUT/ab_old.json
for i in 1 2; do
    (cd .ab/old && PYTHONPATH=. python3 benchmarks/replay_ms.py xl large | sed "s/^/old$i /")
    PYTHONPATH=. python3 benchmarks/replay_ms.py xl large | sed "s/^/new$i /"
done > $OUT/replays.txt 2>/dev/null
for tree in .ab/old .; do
    (cd $tree && PYTHONPATH=. python3 benchmarks/host_timeline.py xl coarse 2>/dev/null | tail -9)
done > $OUT/host_timelines.txt
cat $OUT/replays.txt
python3 benchmarks/ab_table.py old=$OUT/ab_old.json new=$OUT/bench.json
