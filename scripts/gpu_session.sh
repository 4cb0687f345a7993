#!/usr/bin/env bash
# Every GPU check the CPU sessions could not run, in one device call (about 8 minutes, under the tool's 10):
#   the device tool's `run` with command `bash scripts/gpu_session.sh` (from the repository root).
# The device image has python3 with CUDA torch, OpenAI Triton, nvcc, onnx and pytest but not this package's
# serving dependencies, so the package runs from the source tree (PYTHONPATH) and only what needs no server
# runs here. Each step has its own time limit and its own log, and a failed step does not stop the next.
# What comes back under $OUT (at most 8 files):
#   env.txt           GPU, driver, torch / triton / nvcc versions
#   kernels.log       pytest tests/kernels and the torch engine tests (fp16 / bf16, CUDA graphs on the GPU)
#   adagn.log         bench/adagn.py output (issue #6's table)
#   adagn.jsonl       its records: copy to bench/results/ here, then `python bench/report.py`
#   train_speed.log   synth64 stage-1 steps on the GPU (plans issue #5's GPU training)
#   steps.txt         each step's exit status and wall time
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}

step() {  # step NAME LIMIT_S LOG COMMAND...: run with a time limit, log its status and wall time
    local name=$1 limit=$2 log=$3 start=$SECONDS
    shift 3
    timeout "$limit" "$@" >"$OUT/$log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
}

{
    nvidia-smi
    nvcc --version | tail -1
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)
print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).multi_processor_count, 'SMs')"
} >"$OUT/env.txt" 2>&1

step kernels 180 kernels.log "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/kernels \
    tests/engines/test_torch_engine.py
step adagn 200 adagn.log "$PY" bench/adagn.py --repeats 20
cp bench/results/adagn.jsonl "$OUT/" 2>/dev/null
CK=$(mktemp -d)/synth64
step train_speed 90 train_speed.log "$PY" -m diffusegae.train --checkpoint "$CK" --preset synth64 --stage 1 \
    --steps 300 --batch-size 64 --device cuda --amp --log-every 50 --time-limit-s 75
exit 0
