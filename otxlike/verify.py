"""End-to-end checks of backbones per task, and the compatibility matrix they produce.

A backbone *passes* a task when, in a fresh workspace made from the task's default template, it
swaps in with the values ``otxlike build --backbone`` writes, trains one epoch on tiny sample data
(one or two iterations) and evaluates the saved checkpoint, all on the CPU. ``make compat`` runs
this check for every backbone of every library and task (``scripts/compat.py``); the result ships
in the package as ``otxlike/compat.json`` and is what ``otxlike find --task`` filters by.

Matrix document (``compat.json``)::

    {"format": 1, "versions": {"mmdet": "3.3.0", ...},
     "backbones": {"mmdet.ResNet": {"strides": [4, 8, 16, 32],
                                    "tasks": {"detection": {"ok": true, "reason": null, "seconds": 4.1}, ...}},
                   ...}}

``strides`` are the output strides with default arguments at 128x128 (null when the backbone does
not build with defaults). Reading the matrix imports no library.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from otxlike.errors import OtxlikeError, one_line

MATRIX_PATH = Path(__file__).with_name("compat.json")
MATRIX_FORMAT = 1
#: Distributions whose versions the matrix records.
MATRIX_STACK = ("torch", "torchvision", "mmengine", "mmcv", "mmdet", "mmsegmentation", "mmpretrain", "timm")


@dataclass(frozen=True)
class Verdict:
    """The result of one end-to-end check.

    Attributes:
        backbone: Full backbone name, e.g. ``mmdet.ResNet``.
        task: One of :data:`otxlike.TASKS`.
        ok: True if swap, train and eval all succeeded.
        reason: For a failure, one line starting with the step that failed (``swap:``,
            ``train:``, ``eval:``); None when ``ok``.
        seconds: Wall time of the check.
    """

    backbone: str
    task: str
    ok: bool
    reason: str | None
    seconds: float


def sample_data(task: str, root: Path) -> tuple[Path, Path]:
    """Tiny real-image data for ``task`` under ``root`` (made once, then reused).

    Classification: 4 train and 1 val 32x32 digit per class (40 / 10 images). Other tasks: 2 train
    and 2 val 128x128 canvases of pasted digits (COCO JSON and mmseg label maps).

    Returns:
        ``(train_root, val_root)``.
    """
    from otxlike.data.digits import write_digits_canvases, write_digits_classification

    if task == "classification":
        folder = Path(root) / "digits-classification"
        if not (folder / "val").is_dir():
            write_digits_classification(folder, size=32, limit=5)
    else:
        folder = Path(root) / "digits-canvases"
        if not (folder / "val").is_dir():
            write_digits_canvases(folder, num_train=2, num_val=2)
    return folder / "train", folder / "val"


def _one_line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc) if isinstance(exc, OtxlikeError) else f"{type(exc).__name__}: {exc}"
    return one_line(re.sub(r" at 0x[0-9a-f]+", "", one_line(text, len(text))), limit)  # addresses differ per run


def verify(backbone: str, task: str, root: Path) -> Verdict:
    """Swap ``backbone`` into a new ``task`` workspace under ``root``, train one epoch, evaluate.

    The workspace is deleted afterwards; the sample data under ``root`` is kept for the next
    check. Never raises for a failing backbone: the failure is the verdict.

    Returns:
        The :class:`Verdict`.
    """
    from otxlike.configedit.swap import swap_backbone
    from otxlike.engine.runner import evaluate, train
    from otxlike.workspace.workspace import Workspace, create_workspace

    start = time.perf_counter()
    train_root, val_root = sample_data(task, root)
    ws_dir = Path(root) / "workspaces" / f"{task}-{backbone}"
    shutil.rmtree(ws_dir, ignore_errors=True)
    step = "swap"
    try:
        create_workspace(task, ws_dir, None, train_root, val_root)
        ws = Workspace.load(ws_dir)
        result = swap_backbone(ws, backbone)
        if result.missing:
            raise OtxlikeError(f"needs input: {', '.join(result.missing)}")
        step = "train"
        train(ws, epochs=1)
        step = "eval"
        evaluate(ws)
    except Exception as exc:
        return Verdict(backbone, task, False, f"{step}: {_one_line(exc)}", time.perf_counter() - start)
    finally:
        shutil.rmtree(ws_dir, ignore_errors=True)
    return Verdict(backbone, task, True, None, time.perf_counter() - start)


@lru_cache(maxsize=None)
def load_matrix(path: Path = MATRIX_PATH) -> dict:
    """The compatibility matrix document (see the module docstring); empty if there is none.

    Raises:
        OtxlikeError: If the file exists but is not a matrix of this format.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": MATRIX_FORMAT, "versions": {}, "backbones": {}}
    except (OSError, ValueError) as exc:
        raise OtxlikeError(f"cannot read the compatibility matrix {path} ({exc})", "reinstall otxlike") from exc
    if not isinstance(doc, dict) or doc.get("format") != MATRIX_FORMAT:
        raise OtxlikeError(f"{path} is not a compatibility matrix of format {MATRIX_FORMAT}", "reinstall otxlike")
    return doc


def task_status(backbone: str, task: str, matrix: dict | None = None) -> str | None:
    """``'pass'``, the one-line failure reason, or None if the pair was never checked."""
    entry = (matrix or load_matrix())["backbones"].get(backbone, {}).get("tasks", {}).get(task)
    if entry is None:
        return None
    return "pass" if entry["ok"] else entry["reason"]
