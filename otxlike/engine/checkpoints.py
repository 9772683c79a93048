"""Loading checkpoints that mmengine's Runner wrote, under torch's weights-only unpickler."""

from __future__ import annotations

from pathlib import Path

from otxlike.errors import OtxlikeError


def checkpoint_globals() -> list:
    """The exact non-tensor types found in checkpoints that mmengine's Runner writes.

    Since torch 2.6 ``torch.load`` only unpickles allow-listed globals. mmengine stores its
    ``message_hub`` in every checkpoint: ``HistoryBuffer`` objects holding numpy arrays, scalars
    and their dtype classes, and bound statistics methods pickled as ``getattr(buffer, 'min')``
    (``mmengine/logging/history_buffer.py``). These, and only these, are allowed, and only
    while otxlike itself loads a checkpoint (see :func:`checkpoint_loading`).
    """
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = getattr(np, "_core", None) or np.core
    dtype_classes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [HistoryBuffer, multiarray.multiarray.scalar, multiarray.multiarray._reconstruct,
            np.ndarray, np.dtype, builtins.getattr, *dtype_classes]


def checkpoint_loading(checkpoint: Path | None = None):
    """A context in which ``torch.load`` accepts :func:`checkpoint_globals`.

    Args:
        checkpoint: If given, it is checked first: a file holding any other global is refused.

    Raises:
        OtxlikeError: If ``checkpoint`` holds globals outside the allowed set.
    """
    import torch

    allowed = checkpoint_globals()
    if checkpoint is not None:
        names = {f"{g.__module__}.{g.__qualname__}" for g in allowed} | {"numpy.core.multiarray.scalar",
                                                                          "numpy.core.multiarray._reconstruct"}
        extra = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint))) - names
        if extra:
            raise OtxlikeError(
                f"checkpoint {checkpoint} holds objects otxlike does not load ({', '.join(sorted(extra))})",
                "use a checkpoint written by 'otxlike train'",
            )
    return torch.serialization.safe_globals(allowed)
