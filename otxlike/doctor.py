"""``otxlike doctor``: the stack's versions and a check that mmcv's compiled ops load."""

from __future__ import annotations

from otxlike.errors import OtxlikeError
from otxlike.stack import CORE, DEPLOY, TOOLS, unique, versions


def doctor_stack() -> tuple[str, ...]:
    """The distributions ``doctor`` reports: otxlike, the core, every backbone library, the tools."""
    from otxlike.catalog.providers import PROVIDERS

    return unique(("otxlike", *CORE, *(p.package for p in PROVIDERS.values()), *TOOLS, *DEPLOY))


def stack_versions() -> dict[str, str | None]:
    """Installed version of each distribution of :func:`doctor_stack` (None if missing)."""
    return versions(doctor_stack())


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
