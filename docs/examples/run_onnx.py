"""Run a model exported by `otxlike export` with nothing but ONNX Runtime (or OpenVINO), numpy and Pillow.

    python run_onnx.py EXPORT_FOLDER IMAGE [IMAGE ...] [--score-thr 0.3]

EXPORT_FOLDER is what `otxlike export --format onnx` (or `--format openvino`) wrote: the model
file and model.json. Prints one JSON object per image: the class and its score
(classification), detections with boxes in the image's own pixels (detection; instance
segmentation adds each mask's pixel count and its box-relative mask pasted into the image), or
the number of pixels of each class (semantic segmentation). Everything the script needs to know
about the model is in model.json (docs/deploy.md).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def load(folder: Path):
    """(info, run): model.json and a function batch (N, 3, H, W) float32 -> {output name: array}."""
    info = json.loads((folder / "model.json").read_text())
    names = [o["name"] for o in info["outputs"]]
    if info["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / info["model"]), providers=["CPUExecutionProvider"])
        return info, lambda batch: dict(zip(names, session.run(names, {info["input"]["name"]: batch})))
    if info["format"] == "openvino":
        import openvino

        # f32: OpenVINO's CPU plugin would run the model in bfloat16 on CPUs with bf16 instructions
        compiled = openvino.Core().compile_model(str(folder / info["model"]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return info, lambda batch: {n: v for n, v in zip(names, (compiled(batch)[compiled.output(n)] for n in names))}
    raise SystemExit(f"this script runs onnx and openvino exports, not {info['format']}")


def preprocess(path: Path, info: dict):
    """The image as model.json's input asks: RGB, stretched to H x W, float32 0..255, (1, 3, H, W)."""
    _, _, h, w = info["input"]["shape"]
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")  # phone photos: as training turns them
    size = (image.height, image.width)
    array = np.asarray(image.resize((w, h), Image.BILINEAR), np.float32).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(array), size


def paste(mask: np.ndarray, box, size, threshold: float) -> np.ndarray:
    """A box-relative (h, w) probability map resized into its box of an image of ``size``."""
    height, width = size
    out = np.zeros(size, bool)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 > x1 and y2 > y1:
        resized = Image.fromarray(mask.astype(np.float32), mode="F").resize((x2 - x1, y2 - y1), Image.BILINEAR)
        out[y1:y2, x1:x2] = np.asarray(resized) >= threshold
    return out


def results(outputs: dict, info: dict, size, score_thr: float) -> dict:
    classes = info["classes"]
    _, _, h, w = info["input"]["shape"]
    if info["task"] == "classification":
        scores = outputs["scores"][0]
        return {"class": classes[int(scores.argmax())], "score": float(scores.max())}
    if info["task"] == "segmentation":
        labels = Image.fromarray(outputs["labels"][0].astype(np.uint8)).resize((size[1], size[0]), Image.NEAREST)
        counts = np.bincount(np.asarray(labels).ravel(), minlength=len(classes))
        return {"pixels": {classes[c]: int(n) for c, n in enumerate(counts) if n}}
    scale = np.array([size[1] / w, size[0] / h] * 2)
    found = []
    for k in np.flatnonzero(outputs["scores"][0] >= score_thr):
        box = outputs["boxes"][0][k] * scale
        det = {"class": classes[int(outputs["labels"][0][k])], "score": float(outputs["scores"][0][k]),
               "box": [round(float(v), 1) for v in box]}
        if "masks" in outputs:
            det["mask_pixels"] = int(paste(outputs["masks"][0][k], box, size,
                                           info["postprocess"]["mask_threshold"]).sum())
        found.append(det)
    return {"detections": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--score-thr", type=float, default=0.3)
    args = parser.parse_args()
    info, run = load(args.folder)
    for path in args.images:
        batch, size = preprocess(path, info)
        print(json.dumps({"image": str(path), **results(run(batch), info, size, args.score_thr)}))


if __name__ == "__main__":
    sys.exit(main())
