"""otxlike: build, swap backbones, train and evaluate OpenMMLab models from a workspace of plain files.

The package keeps heavy imports (torch, mmengine, mmdet, mmseg, mmpretrain) inside the functions
that need them, so importing :mod:`otxlike` and running ``otxlike --help`` stay instant. The
layers are described in ``docs/architecture.md``.
"""

__version__ = "0.1.0"

__all__ = ["TASKS", "Addin", "SequentialBackbone", "register_addin", "register_backbone", "register_head"]


def __getattr__(name: str):
    """The public API for user code (custom backbones and heads), imported on first use."""
    if name == "TASKS":
        from otxlike.tasks import TASKS

        return TASKS
    if name in ("register_backbone", "register_head"):
        from otxlike.models import custom

        return getattr(custom, name)
    if name in ("Addin", "register_addin"):
        from otxlike.models import addins

        return getattr(addins, name)
    if name == "SequentialBackbone":
        from otxlike.models.custom_backbone import SequentialBackbone

        return SequentialBackbone
    raise AttributeError(f"module 'otxlike' has no attribute '{name}'")
