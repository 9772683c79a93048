"""``otxlike predict``: run an exported model or a checkpoint on images; write results and pictures.

Results are in original image pixels: boxes rescaled from the model's input size, masks pasted
into their boxes (mmdet's ``_do_paste_mask``) and stored as COCO RLE (pycocotools), semantic class
maps resized with nearest-neighbour and saved as PNG. Each picture is the image with the results
drawn over it (Pillow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from otxlike.deploy.runtime import LoadedModel, list_images, read_images
from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, check_folder_path

#: Colours for classes (RGB), repeated when there are more classes; Tableau's 10-colour palette.
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


@dataclass
class PredictResult:
    """Where ``predict`` wrote, and the results per image (as in ``predictions.json``)."""

    out_dir: Path
    results: list[dict]


def image_results(task: str, outputs: dict, i: int, size: tuple[int, int], info: dict,
                  score_thr: float) -> dict:
    """The results of image ``i`` of a batch, in its original ``size`` (H, W).

    Returns:
        classification: ``label``, ``class``, ``score``, ``scores`` (per class); a multi-label
        model adds ``predicted_classes``, every class whose score reaches its threshold (model.json);
        detection: ``detections``: list of ``box`` (x1, y1, x2, y2), ``score``, ``label``,
        ``class`` with score >= ``score_thr``; instance segmentation adds ``mask`` (COCO RLE)
        to each; segmentation: ``class_map`` (H, W) uint8 array (written to PNG by the caller)
        and ``pixels`` per class name.
    """
    import numpy as np

    classes = info["classes"]
    in_h, in_w = info["input"]["shape"][2:]
    if task == "classification":
        scores = outputs["scores"][i]
        label = int(scores.argmax())
        result = {"label": label, "class": classes[label], "score": float(scores[label]),
                  "scores": [round(float(s), 6) for s in scores]}
        post = info.get("postprocess") or {}
        if post.get("multi_label"):
            result["predicted_classes"] = [classes[c] for c in np.flatnonzero(scores >= post["threshold"])]
        return result
    if task == "segmentation":
        from PIL import Image

        labels = outputs["labels"][i].astype(np.uint8)
        class_map = np.asarray(Image.fromarray(labels).resize((size[1], size[0]), Image.NEAREST))
        counts = np.bincount(class_map.ravel(), minlength=len(classes))
        return {"class_map": class_map, "pixels": {classes[c]: int(n) for c, n in enumerate(counts) if n}}
    keep = outputs["scores"][i] >= max(score_thr, 1e-12)
    scale = np.array([size[1] / in_w, size[0] / in_h] * 2, np.float32)
    boxes = outputs["boxes"][i][keep] * scale
    scores, labels = outputs["scores"][i][keep], outputs["labels"][i][keep].astype(int)
    found = [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 6), "label": int(c), "class": classes[c]}
             for b, s, c in zip(boxes, scores, labels)]
    if "masks" in outputs:
        import torch
        from pycocotools import mask as mask_utils

        from otxlike.deploy.evaluate import paste_masks

        masks = paste_masks(outputs["masks"][i][keep], torch.from_numpy(boxes), size,
                            info.get("postprocess", {}).get("mask_threshold", 0.5)).numpy()
        for det, mask in zip(found, masks):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            det["mask"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}
            det["_mask"] = mask
    return {"detections": found}


#: Pictures of smaller images are drawn enlarged (integer factor, nearest) to this many pixels on
#: their long side, so labels stay legible; predictions.json keeps the image's own pixels.
MIN_PICTURE_SIDE = 384


def draw(image_path: Path, result: dict, task: str, classes: list[str]):
    """The image (RGB, decoded as predict reads it: :func:`~otxlike.deploy.runtime.read_image`,
    EXIF orientation applied) with ``result`` drawn over it, as a Pillow image; images smaller
    than :data:`MIN_PICTURE_SIDE` are enlarged by an integer factor first.

    Raises:
        OtxlikeError: The image cannot be read or decoded.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    from otxlike.deploy.runtime import read_image

    canvas = Image.fromarray(read_image(image_path))
    k = max(1, -(-MIN_PICTURE_SIDE // max(canvas.size)))
    if k > 1:
        canvas = canvas.resize((canvas.width * k, canvas.height * k), Image.NEAREST)

    def enlarge(mask):
        return mask.repeat(k, 0).repeat(k, 1) if k > 1 else mask

    base = np.asarray(canvas, np.float32)
    if task == "segmentation":
        class_map = enlarge(result["class_map"])
        # every class is painted but one named background (VOC's and the digits' class 0; ADE20K's
        # class 0 is "wall", a class like the others)
        unpainted = [c for c, name in enumerate(classes) if str(name).lower() == "background"]
        colours = np.array([PALETTE[c % len(PALETTE)] for c in range(len(classes))], np.uint8)
        painted = ~np.isin(class_map, unpainted)[..., None]
        canvas = Image.fromarray(np.where(painted, 0.4 * base + 0.6 * colours[class_map], base).astype(np.uint8))
        pen, x = ImageDraw.Draw(canvas), 2  # a legend of the classes painted
        for c in np.unique(class_map):
            if c in unpainted:
                continue
            name = str(classes[c])
            pen.rectangle([x, 2, x + 10 + 6 * len(name), 15], fill=tuple(int(v) for v in colours[c]))
            pen.text((x + 4, 3), name, fill=(255, 255, 255))
            x += 16 + 6 * len(name)
        return canvas
    if task == "classification":
        pen = ImageDraw.Draw(canvas)
        text = (", ".join(result["predicted_classes"]) or "-") if "predicted_classes" in result \
            else f"{result['class']} {result['score']:.2f}"
        pen.rectangle([0, 0, 8 + 6 * len(text), 14], fill=(0, 0, 0))
        pen.text((3, 2), text, fill=(255, 255, 255))
        return canvas
    for det in result["detections"]:
        if "_mask" in det:
            colour = np.array(PALETTE[det["label"] % len(PALETTE)], np.float32)
            base = np.where(enlarge(det["_mask"])[..., None], 0.5 * base + 0.5 * colour, base)
    canvas = Image.fromarray(base.astype(np.uint8))
    pen = ImageDraw.Draw(canvas)
    for det in result["detections"]:
        colour = PALETTE[det["label"] % len(PALETTE)]
        x1, y1, x2, y2 = (v * k for v in det["box"])
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        text = f"{det['class']} {det['score']:.2f}"
        top = y1 - 13 if y1 >= 13 else y1
        pen.rectangle([x1, top, x1 + 6 * len(text) + 4, top + 13], fill=colour)
        pen.text((x1 + 2, top + 1), text, fill=(255, 255, 255))
    return canvas


def predict(model: LoadedModel, source: Path, out_dir: Path, score_thr: float = 0.3,
            batch_size: int = 8, pictures: bool = True) -> PredictResult:
    """Run ``model`` on ``source`` (an image or a folder of images) into ``out_dir``.

    Writes ``predictions.json`` (one entry per image: ``image`` and the results of
    :func:`image_results`), and unless ``pictures`` is False ``<stem>.png`` per image with the
    results drawn; segmentation also writes ``<stem>_classes.png`` (the class map, pixel = class
    index). ``out_dir`` is written as a temp folder renamed at the end.

    Raises:
        OtxlikeError: No images, an unreadable image, bad ``score_thr``/``batch_size``, or an
            ``out_dir`` that exists and is not an empty folder.
    """
    from PIL import Image

    from otxlike.workspace.runs import staged_dir

    if not 0.0 <= score_thr <= 1.0:
        raise OtxlikeError(f"--score-thr {score_thr} must lie in [0, 1]", "e.g. --score-thr 0.3")
    if batch_size < 1:
        raise OtxlikeError(f"--batch-size {batch_size} must be >= 1")
    out_dir = Path(out_dir)
    check_folder_path(out_dir, "--out")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OtxlikeError(f"{out_dir} exists and is not an empty folder", "choose a new --out folder")
    images = list_images(source)
    task, classes = model.task, model.info["classes"]
    results = []
    with staged_dir(out_dir.parent, out_dir.name) as stage:
        for first in range(0, len(images), batch_size):
            paths = images[first:first + batch_size]
            batch, sizes = read_images(paths, model.input_size)
            outputs = model.run(batch)
            for i, (path, size) in enumerate(zip(paths, sizes)):
                result = image_results(task, outputs, i, size, model.info, score_thr)
                name = _unique_stem(path, stage.path)
                if pictures:
                    draw(path, result, task, classes).save(stage.path / f"{name}.png")
                if "class_map" in result:
                    Image.fromarray(result.pop("class_map")).save(stage.path / f"{name}_classes.png")
                    result["class_map"] = f"{name}_classes.png"
                for det in result.get("detections", []):
                    det.pop("_mask", None)
                results.append({"image": str(path), **({"picture": f"{name}.png"} if pictures else {}), **result})
        doc = {"model": str(model.path), "format": model.info["format"], "task": task, "classes": classes,
               "score_thr": score_thr, "images": results}
        atomic_write_text(stage.path / "predictions.json", json.dumps(doc, indent=1) + "\n")
        if out_dir.exists():  # an empty folder the user made: replaced by the staged one
            out_dir.rmdir()
    return PredictResult(stage.final, results)


def _unique_stem(path: Path, folder: Path) -> str:
    stem, n = path.stem, 1
    while (folder / f"{stem}.png").exists() or (folder / f"{stem}_classes.png").exists():
        n += 1
        stem = f"{path.stem}_{n}"
    return stem
