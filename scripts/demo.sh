#!/usr/bin/env bash
# The main job on real data, for every task: sample data -> workspace -> find -> swap in a
# backbone from another library -> train -> eval -> export to OpenVINO -> eval the export ->
# predict. Prints each task's metric (checkpoint and exported) and wall time.
# DEMO_EPOCHS (classification, default 5) and DEMO_CANVAS_EPOCHS (other tasks, default 4).
set -euo pipefail
out=$(realpath -m "${1:-demo-run}")
otx=$(pwd)/.venv/bin/otxlike
py=$(pwd)/.venv/bin/python
rm -rf "$out"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"

run_task() {  # task backbone epochs metric data_dir images_to_predict
    local task=$1 backbone=$2 epochs=$3 metric=$4 data=$5 images=$6 start exported
    start=$(date +%s)
    echo "=== $task: swap in $backbone, train $epochs epochs ==="
    "$otx" build --task "$task" --workspace "$out/ws-$task" \
        --train-data-roots "$data/train" --val-data-roots "$data/val"
    (cd "$out/ws-$task" && "$otx" build --backbone "$backbone" && "$otx" train --epochs "$epochs" && "$otx" eval \
        && "$otx" export && exported=$(ls -d outputs/*_export | tail -1) && "$otx" eval --model "$exported" \
        && "$otx" predict "$images" --model "$exported" --out "$out/predict-$task")
    "$py" - "$out/ws-$task" "$task" "$backbone" "$metric" "$(( $(date +%s) - start ))" >> "$summary" <<'PY'
import json, pathlib, sys
ws, task, backbone, metric, seconds = sys.argv[1:]
runs = [json.loads((run / "metrics.json").read_text()) for run in sorted(pathlib.Path(ws, "outputs").glob("*_eval"))]
checkpoint = [r for r in runs if r.get("checkpoint")][-1]["metrics"][metric]
exported = [r for r in runs if r.get("model")][-1]["metrics"][metric]
print(f"{task:22s} {backbone:24s} {metric} = {checkpoint:.4f}, exported (OpenVINO) {exported:.4f}   ({seconds} s)")
PY
}

"$otx" sample digits --out "$out/digits"
"$otx" sample digits --task detection --out "$out/canvases"
"$otx" find --backbone mmdet
run_task classification mmdet.RegNet "${DEMO_EPOCHS:-5}" accuracy/top1 "$out/digits" "$out/digits/val/3"
run_task detection torchvision.resnet18 "${DEMO_CANVAS_EPOCHS:-4}" coco/bbox_mAP "$out/canvases" "$out/canvases/val/images"
run_task instance-segmentation torchvision.resnet18 "${DEMO_CANVAS_EPOCHS:-4}" coco/segm_mAP "$out/canvases" "$out/canvases/val/images"
run_task segmentation mmdet.RegNet "${DEMO_CANVAS_EPOCHS:-4}" mIoU "$out/canvases" "$out/canvases/val/images"
echo "=== summary (eval on the val split; accuracy and mIoU in percent, mAP in [0, 1]) ==="
cat "$summary"
