"""The end-to-end check of one backbone on one task, which ``make compat`` runs for the matrix
(:mod:`otxlike.compat.matrix`).

A backbone *passes* a task when, in a fresh workspace made from the task's default template, it
swaps in with the values ``otxlike build --backbone`` writes, trains one epoch on tiny sample data
(one or two iterations) and evaluates the saved checkpoint, all on the CPU.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from otxlike.errors import OtxlikeError, one_line
from otxlike.tasks import get_task


@dataclass(frozen=True)
class Verdict:
    """The result of one end-to-end check.

    Attributes:
        backbone: Full backbone name, e.g. ``mmdet.ResNet``.
        task: One of :data:`otxlike.tasks.TASKS`.
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
    spec = get_task(task)
    folder = Path(root) / f"sample-{spec.sample}"
    if not (folder / "val").is_dir():
        spec.write_sample(folder, limit=5, num_train=2, num_val=2)
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
    from otxlike.configedit.backbone import swap_backbone
    from otxlike.configedit.data import create_workspace
    from otxlike.engine.evaluate import evaluate
    from otxlike.engine.train import train
    from otxlike.workspace.workspace import Workspace

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
