#!/usr/bin/env bash
# Train the synth64 DiffuseGAE on a lent GPU (issue #5), in device calls of under 10 minutes:
#   the device tool's `run`, command `bash scripts/gpu_train.sh STAGE SECONDS [diffusegae train flags]`,
#   carry [".gpu_train"] when that folder exists here.
# The checkpoint lives in /tmp/diffusegae-train/synth64 on the device machine, which keeps it between calls
# while the machine stays warm (30 s idle). A fresh machine starts from .gpu_train/ (what an earlier call
# returned, copied there) if it was carried, else from a new synth64. A stage switch starts from the last
# EMA weights with a fresh optimizer (diffusegae train's rule); a restart from .gpu_train/ does too.
# Back under $OUT: config.json, model.safetensors (EMA weights in fp16, 15.4 MiB: one file under the tool's
# 16 MiB cap; diffusegae loads them as float32), train_log.jsonl, train.log, and conditioning.json: how much
# the decoder uses z_sem at each t (python -m diffusegae.eval.progress, also printed). Stage 1 has gone long
# enough for edits when the share at t = 800 is well above 0 (tiny32 as shipped: 0.07).
# Here, after each call: mkdir -p .gpu_train && cp FILES_AT/* .gpu_train/ (git-ignored, so it can be carried);
# to ship: cp .gpu_train/{config.json,model.safetensors,train_log.jsonl} checkpoints/synth64/.
set -u
STAGE=${1:?usage: gpu_train.sh STAGE SECONDS [flags]}
SECONDS_LIMIT=${2:?usage: gpu_train.sh STAGE SECONDS [flags]}
shift 2
OUT=${OUT:-/tmp/gpu_train_out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu (with PRESET=tiny32) tries the script without a GPU, as its test does
PRESET_NAME=${PRESET:-synth64}
CK=${CK:-/tmp/diffusegae-train/$PRESET_NAME}
mkdir -p "$OUT" "$(dirname "$CK")"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

if [ ! -f "$CK/config.json" ] && [ -f .gpu_train/config.json ]; then
    mkdir -p "$CK" && cp .gpu_train/config.json .gpu_train/model.safetensors "$CK/"
    cp .gpu_train/train_log.jsonl "$CK/" 2>/dev/null
    echo "restored $CK from .gpu_train/"
fi
PRESET=()
[ -f "$CK/config.json" ] || PRESET=(--preset "$PRESET_NAME")
AMP=()
[ "$DEVICE" = cpu ] || AMP=(--amp)

timeout $((SECONDS_LIMIT + 120)) "$PY" -m diffusegae.train --checkpoint "$CK" "${PRESET[@]}" --stage "$STAGE" \
    --steps 10000000 --time-limit-s "$SECONDS_LIMIT" --device "$DEVICE" "${AMP[@]}" --log-every 100 "$@" 2>&1 \
    | tee "$OUT/train.log"

"$PY" - "$CK" "$OUT" <<'PY'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
ck, out = Path(sys.argv[1]), Path(sys.argv[2])
weights = {k: v.half() if v.is_floating_point() else v for k, v in load_file(ck / "model.safetensors").items()}
save_file(weights, out / "model.safetensors")
for name in ("config.json", "train_log.jsonl"):
    if (ck / name).is_file():  # no log yet before the first --log-every steps
        shutil.copy(ck / name, out / name)
print(f"returned {ck} (EMA weights in fp16) under {out}")
PY

"$PY" -m diffusegae.eval.progress --checkpoint "$CK" --device "$DEVICE" --json "$OUT/conditioning.json"
