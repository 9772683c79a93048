"""Running an exported model (ONNX Runtime, OpenVINO, TorchScript) or a checkpoint the same way.

An export folder holds the model file and ``model.json`` (:func:`otxlike.deploy.export.model_info`
writes it; docs/deploy.md lists its fields). Both kinds of model take the same batch: float32
(N, 3, H, W), RGB, 0..255, stretched to the exported H x W (:func:`read_images`), and return the
outputs of :mod:`otxlike.deploy.graphs` as numpy arrays by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from otxlike.errors import OtxlikeError

#: Export format -> the model file in the export folder.
MODEL_FILES = {"openvino": "model.xml", "onnx": "model.onnx", "torchscript": "model.pt"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class LoadedModel:
    """A model that maps a (N, 3, H, W) float32 RGB batch to its named outputs.

    Attributes:
        info: The ``model.json`` content (task, classes, input, outputs, ...).
        path: The model file (or the checkpoint).
        run: ``batch -> {output name: array}``.
    """

    info: dict
    path: Path
    run: object = field(repr=False)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        shape = self.info["input"]["shape"]
        return int(shape[2]), int(shape[3])

    @property
    def task(self) -> str:
        return self.info["task"]


def find_model_json(path: Path) -> Path:
    """``model.json`` of an export given as its folder, its model file or the json itself.

    Raises:
        OtxlikeError: No such file or folder, or no model.json beside the model.
    """
    path = Path(path)
    if not path.exists():
        raise OtxlikeError(f"{path} does not exist", "pass an export folder (outputs/*_export) or its model file")
    folder = path if path.is_dir() else path.parent
    info = folder / "model.json"
    if not info.is_file():
        raise OtxlikeError(f"no model.json in {folder}",
                           "pass a folder written by 'otxlike export' (model.json describes the model's input and outputs)")
    return info


def load_exported(path: Path, device: str = "CPU") -> LoadedModel:
    """Load an export folder (or its model file / model.json) with its runtime.

    Args:
        path: The folder ``otxlike export`` or ``otxlike optimize`` wrote, or a file in it.
        device: OpenVINO device name (``CPU``).

    Raises:
        OtxlikeError: A missing or unreadable model.json, an unknown format, a missing model file,
            or a runtime that cannot read the model.
    """
    info_path = find_model_json(path)
    try:
        info = json.loads(info_path.read_text())
        fmt, model_file = info["format"], info_path.parent / info["model"]
        info["task"], info["input"]["shape"]
        names = [o["name"] for o in info["outputs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise OtxlikeError(f"{info_path} is not a model.json written by otxlike ({type(exc).__name__}: {exc})",
                           "export the model again with 'otxlike export'") from exc
    if fmt not in MODEL_FILES:
        raise OtxlikeError(f"unknown format '{fmt}' in {info_path}", f"formats: {', '.join(MODEL_FILES)}")
    if not model_file.is_file():
        raise OtxlikeError(f"{model_file} (named in {info_path.name}) does not exist", "export the model again")
    try:
        run = _RUNNERS[fmt](model_file, names, device)
    except OtxlikeError:
        raise
    except Exception as exc:
        raise OtxlikeError(f"{fmt} cannot load {model_file}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                           "export the model again with 'otxlike export'") from exc
    return LoadedModel(info, model_file, run)


def _onnx_runner(model_file: Path, names: list[str], device: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # no busy-waiting of ORT's threads between calls: they would take the CPU from whatever runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch):
        return dict(zip(names, session.run(names, {input_name: batch})))
    return run


#: OpenVINO's CPU plugin runs an FP32 model in bfloat16 by default on CPUs that have bf16
#: instructions (its ``INFERENCE_PRECISION_HINT`` defaults to bf16 where ``avx512_bf16`` / AMX
#: exist: openvino docs, "CPU device", Inference Precision): a FP32 export would then differ from
#: PyTorch by ~3e-3 on one machine and not on another. Exports run in the precision they were saved
#: in (fp16 IR weights are decompressed to f32 as on any CPU; INT8 layers stay INT8).
OPENVINO_CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def _openvino_runner(model_file: Path, names: list[str], device: str):
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_file), device, OPENVINO_CPU_CONFIG if device == "CPU" else {})
    request = compiled.create_infer_request()

    def run(batch):
        result = request.infer({0: batch})
        return {name: result[compiled.output(name)].copy() for name in names}
    return run


def _torchscript_runner(model_file: Path, names: list[str], device: str):
    import torch

    module = torch.jit.load(str(model_file), map_location="cpu").eval()

    def run(batch):
        with torch.no_grad():
            out = module(torch.from_numpy(batch))
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {name: t.numpy() for name, t in zip(names, out)}
    return run


_RUNNERS = {"onnx": _onnx_runner, "openvino": _openvino_runner, "torchscript": _torchscript_runner}


def graph_runner(graph):
    """``batch -> {name: array}`` for an export graph run eagerly in PyTorch."""
    import torch

    def run(batch):
        with torch.no_grad():
            out = graph(torch.from_numpy(batch))
        out = out if isinstance(out, tuple) else (out,)
        return {name: t.numpy() for name, t in zip(graph.output_names, out)}
    return run


def list_images(source: Path) -> list[Path]:
    """The image files of ``source`` (one file, or a folder's files sorted by name, not recursive).

    Hidden files (names starting with ``.``: macOS ``._<name>`` AppleDouble files, ``.DS_Store``)
    of a folder are skipped, by the data formats' rule (``otxlike.data.formats.common.is_hidden``);
    a file given by name is read whatever its name.

    Raises:
        OtxlikeError: ``source`` missing, or a folder without images.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise OtxlikeError(f"{source} does not exist", "pass an image file or a folder of images")
    from otxlike.data.formats.common import is_hidden

    images = sorted(p for p in source.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p) and p.is_file())
    if not images:
        raise OtxlikeError(f"no images in {source}", f"put {', '.join(IMAGE_SUFFIXES)} files there")
    return images


def read_image(path: Path):
    """One image file as training's loader reads it, in RGB: uint8 (H, W, 3).

    The templates' pipelines start with ``LoadImageFromFile`` at its defaults
    (``color_type='color'``, ``imdecode_backend='cv2'``), i.e. ``mmcv.imfrombytes(bytes,
    flag='color', backend='cv2')`` (``mmcv/transforms/loading.py``, ``mmcv/image/io.py``):
    ``cv2.imdecode(..., IMREAD_COLOR)`` turns the image by its EXIF ``Orientation``, makes grey
    and palette images 3-channel, drops alpha and scales 16-bit images to 8-bit (value >> 8).
    The same call here gives predict exactly the pixels the model was trained and evaluated on.

    Raises:
        OtxlikeError: A file that cannot be read or decoded (named).
    """
    import mmcv

    path = Path(path)
    try:
        img = mmcv.imfrombytes(path.read_bytes(), flag="color", channel_order="rgb", backend="cv2")
    except OSError as exc:
        raise OtxlikeError(f"cannot read image {path}: {exc.strerror or exc}", "remove or replace the file") from exc
    if img is None:  # cv2.imdecode returns None for bytes it cannot decode
        raise OtxlikeError(f"cannot read image {path}: not an image OpenCV can decode", "remove or replace the file")
    return img


def read_images(paths: list[Path], input_size: tuple[int, int]):
    """``(batch, sizes)``: float32 (N, 3, H, W) RGB 0..255, each image decoded as training decodes
    it (:func:`read_image`: EXIF orientation applied, 16-bit scaled to 8-bit) and stretched to
    ``input_size`` (H, W) with bilinear resampling (Pillow, as docs/deploy.md's contract and
    docs/examples/run_onnx.py do it), and each decoded (height, width) in pixels: the size
    predictions are mapped back to.

    Raises:
        OtxlikeError: A file that cannot be read or decoded (named).
    """
    import numpy as np
    from PIL import Image

    h, w = input_size
    batch, sizes = np.empty((len(paths), 3, h, w), np.float32), []
    for i, path in enumerate(paths):
        img = read_image(path)
        sizes.append(img.shape[:2])
        if img.shape[:2] != (h, w):
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        batch[i] = img.transpose(2, 0, 1)
    return batch, sizes


def throughput(model: LoadedModel, batch, seconds: float = 2.0, min_runs: int = 3) -> float:
    """Images per second of ``model`` on ``batch`` (N, 3, H, W): one warm-up call, then calls
    until ``seconds`` have passed (at least ``min_runs``); wall time of the calls only."""
    import time

    model.run(batch)
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        model.run(batch)
        runs += 1
    return runs * len(batch) / (time.perf_counter() - start)
