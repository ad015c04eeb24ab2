#!/usr/bin/env bash
# The scale-out recipe end to end (an opt-in script, not part of npm test): gyre trains, hands
# the model to PyTorch, which trains it with DistributedDataParallel on two CPU processes, and
# gyre takes it back and goes on. Needs a python with torch and safetensors:
#   bash examples/scale-out/run.sh [PYTHON] [DIR]
# (PYTHON defaults to python3; a virtual environment's works: .../bin/python.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python3}"
dir="${2:-$(mktemp -d)}"
torchrun="$(dirname "$("$python" -c 'import sys; print(sys.executable)')")/torchrun"
[[ -x "$torchrun" ]] || torchrun="$python -m torch.distributed.run"
"$python" -c 'import torch, safetensors' || { echo "needs a python with torch and safetensors: pip install torch safetensors" >&2; exit 1; }
echo "working in $dir"
node "$here/handover.mjs" start "$dir"
$torchrun --nproc_per_node=2 --master_port=29533 "$here/train_ddp.py" "$dir"
node "$here/handover.mjs" continue "$dir"
