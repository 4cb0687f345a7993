#!/usr/bin/env bash
# The shipped checkpoint's whole recipe, from an empty directory: bash scripts/train_tiny32.sh [DIR]
# (default /tmp/diffusegae-train/tiny32; 2 h 22 min on the project's 2-core AMD EPYC, see checkpoints/tiny32/MODEL_CARD.md).
# Resumable: rerun the same command after an interruption. A stage whose step count is reached is skipped;
# an interrupted one resumes from its last save (diffusegae train saves every 5 minutes and on SIGTERM).
# The objective is what makes this short: the preset's UNet predicts v and is trained on the v-MSE, so it
# reads z_sem at every timestep; the encoder's 4×4 head keeps the pose (a global pool threw it away); the GAE
# stage runs long with the swap and reassembly losses weighted up (λss = λur = 2); a last GAE-only refit on the
# encoder stage 3 tuned adds the shared-chunk loss (λsc), which asks each chunk not to carry the other attributes.
set -euo pipefail
CK=${1:-/tmp/diffusegae-train/tiny32}
PY=${PY:-python}
THREADS=${THREADS:-2}
STEPS1=${STEPS1:-3401} STEPS2=${STEPS2:-5000} STEPS3=${STEPS3:-600} STEPS4=${STEPS4:-3000}
EXTRA=${EXTRA:-}  # more `diffusegae train` flags for every stage (the test: a tiny batch, few statistics images)

done_steps() {  # steps of stage $1 already in the checkpoint's record (0 when none)
    "$PY" - "$CK" "$1" <<'PY'
import json, pathlib, sys
info = pathlib.Path(sys.argv[1], "config.json")
stage = json.loads(info.read_text()).get("info", {}).get("train", {}).get(f"stage{sys.argv[2]}", {}) if info.is_file() else {}
state = pathlib.Path(sys.argv[1], "train_state", "state.json")
live = json.loads(state.read_text()) if state.is_file() else {}
print(live["step"] if live.get("stage") == int(sys.argv[2]) else stage.get("steps", 0))
PY
}

stage() {  # stage number, target steps, flags
    local n=$1 target=$2 have
    shift 2
    have=$(done_steps "$n")
    if [ "$have" -ge "$target" ]; then
        echo "stage $n: $have of $target steps done, skipped"
        return
    fi
    # shellcheck disable=SC2086  # EXTRA is a list of flags
    "$PY" -m diffusegae.cli train --checkpoint "$CK" --stage "$n" --steps $((target - have)) \
        --threads "$THREADS" --save-every-s 300 "$@" $EXTRA
}

stage 1 "$STEPS1" --preset tiny32 --lr 2e-4 --batch-size 32 --seed 0
stage 2 "$STEPS2" --lr 3e-4 --batch-size 32 --seed 0 --lambda-ss 2 --lambda-ur 2
stage 3 "$STEPS3" --lr 1e-5 --batch-size 8 --seed 0
stage 4 "$STEPS4" --lr 1e-4 --batch-size 32 --seed 0 --lambda-ss 2 --lambda-ur 2 --lambda-sc 4
"$PY" -m diffusegae.eval.progress --checkpoint "$CK"
