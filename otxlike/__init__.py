"""otxlike: build, swap backbones, train and evaluate OpenMMLab models from a workspace of plain files.

The package keeps heavy imports (torch, mmengine, mmdet, mmseg, mmpretrain) inside the functions
that need them, so importing :mod:`otxlike` and running ``otxlike --help`` stay instant.
"""

__version__ = "0.1.0"

TASKS = ("classification", "detection", "instance-segmentation", "segmentation")
"""The tasks a workspace can be built for (``otxlike build --task``)."""
