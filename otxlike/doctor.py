"""Stack versions and a check that mmcv's compiled ops load (``otxlike doctor``)."""

from __future__ import annotations

from importlib import metadata

from otxlike.errors import OtxlikeError

STACK = ("otxlike", "torch", "torchvision", "mmengine", "mmcv", "mmdet", "mmsegmentation", "mmpretrain", "timm",
         "numpy", "typer", "rich", "pyyaml")


def versions(names: tuple[str, ...] = STACK) -> dict[str, str | None]:
    """Installed version of each distribution (None if missing), read without importing it."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def check_mmcv_ops() -> str:
    """Run ``mmcv.ops.nms`` on two overlapping boxes (IoU 0.68) at threshold 0.5.

    Returns:
        ``'ok (nms kept 1 of 2 boxes)'``.

    Raises:
        OtxlikeError: If the compiled ops do not load or give a wrong answer.
    """
    try:
        import torch
        from mmcv.ops import nms

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]])
        kept, _ = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    except Exception as exc:
        raise OtxlikeError(
            f"mmcv's compiled ops do not load ({type(exc).__name__}: {exc})",
            "rebuild mmcv with 'make install' (it compiles mmcv 2.1.0 against the installed torch)",
        ) from exc
    if len(kept) != 1:
        raise OtxlikeError(f"mmcv.ops.nms kept {len(kept)} of 2 overlapping boxes, expected 1", "reinstall mmcv")
    return "ok (nms kept 1 of 2 boxes)"
