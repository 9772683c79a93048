"""otxlike's children of mmengine's root MODELS and OPTIM_WRAPPERS registries.

mmengine resolves a scoped type such as ``'otxlike.TorchvisionBackbone'`` by importing
``otxlike.registry`` and then the registry's ``locations`` (see ``Registry.get`` in
``mmengine/registry/registry.py``), so a workspace's ``model.py`` can name otxlike modules from any
default scope (mmpretrain, mmdet, mmseg) without ``custom_imports``.
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    scope="otxlike",
    locations=["otxlike.models.torchvision_backbone", "otxlike.models.timm_backbone",
               "otxlike.models.custom_backbone", "otxlike.models.necks",
               "otxlike.models.addins"],
)

OPTIM_WRAPPERS = Registry(
    "optim_wrapper",
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope="otxlike",
    locations=["otxlike.engine.amp"],
)
