#!/usr/bin/env bash
# Fine-tune the whole msh ladder on one GPU at once (one process per quality, train/configs/msh-gpu-q*.yaml).
#   train/gpu_ladder.sh [STEPS] [LR_MILESTONE] [QUALITIES]        e.g. train/gpu_ladder.sh 8000 7000 "1 2 3 4 5 6 7"
# then, per quality:  codec export runs/msh-gpu-qQ/checkpoints/last.ckpt --add-to-manifest --name msh-qQ --family msh --quality Q --force
set -u
STEPS=${1:-8000}; MILESTONE=${2:-7000}; QUALITIES=${3:-"1 2 3 4 5 6 7"}
PY=${PYTHON:-python}
pids=()
for q in $QUALITIES; do
  $PY train/fit.py fit --config train/configs/msh-base.yaml --config train/configs/msh-gpu.yaml \
      --config train/configs/msh-gpu-q$q.yaml --trainer.max_steps "$STEPS" \
      --model.codec.init_args.lr_milestones "[$MILESTONE]" ${MAX_TIME:+--trainer.max_time $MAX_TIME} > "runs/msh-gpu-q$q.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
