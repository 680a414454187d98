#!/usr/bin/env bash
# The training entry point on a GPU machine, for docs/benchmarks.md: the same year snapshot
# trained on the GPU (bf16 autocast) and on that machine's CPU, each printing samples/s.
# Usage (repository root): bench/gpu_train.sh SNAPSHOT OUTDIR
# Needs only python3 with torch, numpy, pandas, pyarrow, matplotlib (as the training image).
set -euo pipefail
snap=$1; out=$2; mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0)); print('cpus', __import__('os').cpu_count())"
run() {  # name, then arguments of `python -m training train`
  local name=$1; shift
  python3 -m training train --snapshot "$snap" --out "/tmp/fti-$name" "$@" >/dev/null
  cp "/tmp/fti-$name/metrics.json" "$out/$name.json"
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>14}: {m['device']:>4} bf16={m['mixed_precision']!s:5} batch {m['batch_size']:>5} "
      f"{m['samples_per_second']:>10.0f} samples/s  {m['train_seconds']:6.1f} s  "
      f"test ROC AUC {m['test']['roc_auc']:.4f}  log loss {m['test']['log_loss']:.4f}")
PY
}
run gpu-b1024 --device cuda --epochs 12
run cpu-b1024 --device cpu --epochs 2
run gpu-b8192 --device cuda --epochs 12 --batch-size 8192 --lr 4e-3
