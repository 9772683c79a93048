#!/usr/bin/env bash
# The main job on real data: digits -> workspace -> find -> swap backbone -> train -> eval.
set -euo pipefail
out=${1:-demo-run}
otx=$(pwd)/.venv/bin/otxlike
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
"$otx" sample digits --out "$out/digits"
"$otx" build --task classification --workspace "$out/ws" \
    --train-data-roots "$out/digits/train" --val-data-roots "$out/digits/val"
cd "$out/ws"
"$otx" find --backbone mmdet
"$otx" build --backbone mmdet.RegNet
"$otx" train --epochs "${DEMO_EPOCHS:-5}"
"$otx" eval
echo "[*] demo wall time: $(( $(date +%s) - start )) s"
