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
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint))
        except Exception as exc:  # truncated, random bytes, not a zip-based torch file
            raise OtxlikeError(f"checkpoint {checkpoint} is not a readable torch checkpoint "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                               "use a checkpoint written by 'otxlike train' (outputs/*/best_*.pth)") from exc
        extra = set(found) - names
        if extra:
            raise OtxlikeError(
                f"checkpoint {checkpoint} holds objects otxlike does not load ({', '.join(sorted(extra))})",
                "use a checkpoint written by 'otxlike train'",
            )
    return torch.serialization.safe_globals(allowed)


def check_fits(checkpoint: Path, cfg) -> None:
    """Refuse a checkpoint whose state dict does not fit the config's model, before any run.

    mmengine loads ``load_from`` non-strictly (``mmengine/runner/checkpoint.py``): a checkpoint of
    another model would leave layers at random and be evaluated "successfully". Every tensor of the
    model must be in the checkpoint with the same shape; extra tensors are allowed.

    Args:
        checkpoint: A checkpoint that passed :func:`checkpoint_loading`'s check.
        cfg: The run config (its ``model`` and ``default_scope``).

    Raises:
        OtxlikeError: One line with the numbers of missing and mis-shaped tensors and the first
            of each.
    """
    _build_checked(checkpoint, cfg)


def load_model(checkpoint: Path, cfg):
    """The config's model (eval mode, CPU) with the weights of ``checkpoint``, checked like
    :func:`check_fits`; ``checkpoint`` is first checked by :func:`checkpoint_loading`. The
    checkpoint's ``meta.dataset_meta`` (class names) is kept as ``model.dataset_meta``.

    Raises:
        OtxlikeError: An unreadable checkpoint, one holding other objects, or one that does not fit.
    """
    checkpoint = Path(checkpoint)
    with checkpoint_loading(checkpoint):
        model, state = _build_checked(checkpoint, cfg)
    tensors = state.get("state_dict", state)
    model.load_state_dict({k: tensors[k] for k in model.state_dict()})
    meta = state.get("meta") if isinstance(state.get("meta"), dict) else {}
    model.dataset_meta = meta.get("dataset_meta") or {}  # mmengine's Runner saves the train metainfo there
    return model.eval()


def _build_checked(checkpoint: Path, cfg):
    """``(model, checkpoint)``: the config's model built in its default scope and the loaded
    checkpoint (a dict), after the fit check of :func:`check_fits`."""
    import torch
    from mmengine.registry import MODELS, DefaultScope

    with checkpoint_loading():
        state = torch.load(str(checkpoint), map_location="cpu")
    tensors = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(tensors, dict):
        raise OtxlikeError(f"checkpoint {checkpoint} holds no state dict", "use a checkpoint written by 'otxlike train'")
    from otxlike.models.addins import with_addins_cfg
    from otxlike.workspace.workspace import config_scope

    with_addins_cfg(cfg)  # a PEFT checkpoint is the whole model with its add-ins (docs/addins.md)
    with DefaultScope.overwrite_default_scope(config_scope(cfg)):
        model = MODELS.build(cfg.model)
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    mismatched = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in tensors and hasattr(tensors[k], "shape") and tuple(tensors[k].shape) != tuple(v.shape)]
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the model's {len(own)} tensors are missing (e.g. {missing[0]})")
        if mismatched:
            parts.append(f"{len(mismatched)} have another shape (e.g. {mismatched[0]}: checkpoint vs model)")
        raise OtxlikeError(f"checkpoint {Path(checkpoint).name} does not fit this workspace's model: "
                           + "; ".join(parts), "use a checkpoint trained in this workspace (outputs/*/best_*.pth)")
    return model, state
