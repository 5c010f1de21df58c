#!/usr/bin/env bash
# On the device: N concurrent one-epoch PTB runs (N = 1, 3, 6, 12) to see how many runs share
# one GPU before it saturates; results in benchmarks/results/concurrency_h100.json.
#   bash benchmarks/probe_concurrency.sh   (PTB files carried in .carry/ptb)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 SPARSETRAIN_DATA=$PWD/.carry
nvidia-smi -L; which nvidia-cuda-mps-control
one(){ python3 -m sparsetrain run recipes/ptb-lm.yaml --out /tmp/p$1 --name r$2 --set backend=cupy --set train.steps=414 --set eval.test=false > $OUT/n$1_$2.log 2>&1; }
for N in 1 3 6 12; do s=$(date +%s.%N); for i in $(seq $N); do one $N $i & done; wait; e=$(date +%s.%N)
python3 -c "
import json,glob; s=[json.load(open(f)) for f in glob.glob('/tmp/p$N/*/summary.json')]
print('N=$N wall', round($e-$s,1), 'train', sorted(round(x['train_wall_s'],1) for x in s), 'eval', sorted(round(x['wall_s']-x['train_wall_s'],1) for x in s), 'bwd', sorted(round(x['backward_ms_per_step'],2) for x in s), [x['status'] for x in s])"; done
