"""Backbones of the OpenMMLab libraries: mmdet, mmseg, mmpretrain."""

from __future__ import annotations

import inspect
from typing import Any

from otxlike.catalog.introspect import class_args
from otxlike.catalog.providers.base import Provider, keep_timm_levels, require, with_presets, with_published_weights
from otxlike.catalog.spec import BackboneSpec
from otxlike.errors import OtxlikeError


class MMProvider(Provider):
    """Backbones of an OpenMMLab library (mmdet, mmseg, mmpretrain).

    A backbone is a class exported by ``<lib>.models.backbones`` (its ``__all__``) and registered
    in ``<lib>.registry.MODELS``; mmseg's backbones folder also registers helpers such as
    ``DeconvModule`` that are not exported, and are not listed.

    Args:
        name: Import name and backbone-name prefix, e.g. ``mmdet``.
        package: The PyPI distribution to install if the import fails, e.g. ``mmsegmentation``.
        order: Position in listings.
    """

    def __init__(self, name: str, package: str, order: int) -> None:
        self.name = name
        self.package = package
        self.scope = name  # the library's own default scope
        self.order = order

    def _import(self) -> tuple[Any, Any]:
        backbones = require(f"{self.name}.models.backbones", self.name, self.package)
        registry = require(f"{self.name}.registry", self.name, self.package)
        registry.MODELS.import_from_location()
        return backbones, registry.MODELS

    def specs(self) -> list[BackboneSpec]:
        """Every backbone class of the installed library, with the presets of its structured
        required arguments (:mod:`otxlike.catalog.presets`) and its published weights.

        Raises:
            OtxlikeError: If the library is not installed.
        """
        return with_published_weights(self, with_presets(self, self.introspect()))

    def introspect(self) -> list[BackboneSpec]:
        """The backbone classes of the installed library and their arguments, as declared.

        Raises:
            OtxlikeError: If the library is not installed.
        """
        backbones, models = self._import()
        out = []
        for cls_name in getattr(backbones, "__all__", []):
            cls = models.module_dict.get(cls_name)
            if cls is None or not inspect.isclass(cls):
                continue
            args, accepts_kwargs = class_args(cls)
            out.append(
                BackboneSpec(
                    name=f"{self.name}.{cls_name}",
                    library=self.name,
                    source=inspect.getsourcefile(cls) or "",
                    args=args,
                    accepts_kwargs=accepts_kwargs,
                )
            )
        return out

    def pretrained(self, spec: BackboneSpec, values: dict) -> dict | None:
        """ImageNet weights for ``spec`` built with ``values``: for mmpretrain, the backbone part
        (``prefix='backbone'``) of the first ImageNet-1k classifier of its model zoo built the same
        way (:mod:`otxlike.catalog.zoo`); otherwise by the naming conventions of mmdet/mmseg
        configs, where mmengine's checkpoint tables (``mmengine/hub/*.json``) hold the name."""
        from mmengine.runner.checkpoint import get_external_models, get_torchvision_models

        if self.name == "mmpretrain":
            from otxlike.catalog.zoo import find_weights

            entry = find_weights(spec, values)
            if entry is not None:
                return {"type": "Pretrained", "checkpoint": entry["weights"], "prefix": "backbone"}

        name = _CONVENTIONS.get(spec.short_name, lambda v: None)(values)
        if name is None:
            return None
        scheme, _, key = name.partition("://")
        table = get_torchvision_models() if scheme == "torchvision" else get_external_models()
        return {"type": "Pretrained", "checkpoint": name} if key in table else None

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``: the scoped type plus the given values."""
        return {"type": spec.name, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the outputs at positions ``keep``, through ``out_indices``.

        Raises:
            OtxlikeError: If the backbone has no ``out_indices`` argument.
        """
        if spec.short_name == "TIMMBackbone" and spec.arg("out_indices") is None:
            return keep_timm_levels(cfg, keep)  # through **kwargs to timm.create_model(features_only=True)
        current = cfg.get("out_indices", values.get("out_indices"))
        if spec.arg("out_indices") is None or not isinstance(current, (list, tuple)):
            raise OtxlikeError(f"{spec.name} has no out_indices to pick the outputs the model needs",
                               "pick a backbone whose output strides match the template's")
        return {**cfg, "out_indices": tuple(current[i] for i in keep)}

    def all_outputs(self, spec: BackboneSpec, cfg: dict) -> dict | None:
        """``cfg`` with ``out_indices`` listing every stage up to the last one it lists now.

        mmpretrain's backbones default to their last stage only (ResNet ``(3,)``, MobileNetV2
        ``(7,)``, ConvNeXt ``-1``), which is what a classifier reads; a detector's or segmenter's
        multi-scale neck needs the earlier stages too (mmdet's ``MobileNetV2`` defaults to
        ``out_indices=(1, 2, 4, 7)``, ``mmdet/models/backbones/mobilenet_v2.py``). A last index
        ``k >= 0`` becomes ``0..k``, of which the swap keeps the last output at each stride the
        neck reads (:func:`~otxlike.configedit.adapters.plan_stages`); a negative one (counted
        from the end) becomes ``(0, 1, 2, 3)``, the four stages of the hierarchical backbones that
        use it (ConvNeXt, PoolFormer, EdgeNeXt, ...).
        Backbones with ``gap_before_final_norm`` get it False, so each output stays a map
        (:func:`~otxlike.catalog.values.feature_map_args`).

        Returns:
            The widened ``cfg``, or None if the backbone has no ``out_indices`` or already lists
            every stage.
        """
        arg = spec.arg("out_indices")
        if arg is None:
            return None
        current = cfg.get("out_indices", arg.default)  # model.py leaves out arguments at their default
        indices = [current] if isinstance(current, int) else list(current) if isinstance(current, (list, tuple)) else []
        if not indices or not all(isinstance(i, int) for i in indices):
            return None
        from otxlike.catalog.values import feature_map_args

        wide = {"out_indices": tuple(range(max(indices) + 1)) if min(indices) >= 0 else (0, 1, 2, 3)}
        # maps, not pooled vectors (ConvNeXt, EdgeNeXt, ...); a ViT's out_type stays: its layers
        # share one stride, so widening them gives an FPN nothing it lacks
        wide.update({k: v for k, v in feature_map_args(spec).items() if k != "out_type"})
        return None if all(cfg.get(k, spec.arg(k).default) == v for k, v in wide.items()) else {**cfg, **wide}


#: Backbone class -> its published checkpoint for given argument values, as the libraries' own
#: configs name them (mmdet ``configs/_base_/models/*_r50_fpn.py``: torchvision://resnet50;
#: mmseg ``configs/_base_/models/*_r50-d8.py``: open-mmlab://resnet50_v1c; mmdet
#: ``configs/regnet``: open-mmlab://regnetx_3.2gf).
_CONVENTIONS = {
    "ResNet": lambda v: f"torchvision://resnet{v.get('depth')}",
    "ResNetV1c": lambda v: f"open-mmlab://resnet{v.get('depth')}_v1c",
    "ResNeXt": lambda v: f"open-mmlab://resnext{v.get('depth')}_{v.get('groups')}x{v.get('base_width')}d",
    "RegNet": lambda v: f"open-mmlab://{v['arch']}" if isinstance(v.get("arch"), str) else None,
    "ResNeSt": lambda v: f"open-mmlab://resnest{v.get('depth')}",
}


PROVIDERS = (MMProvider("mmdet", "mmdet", 0), MMProvider("mmseg", "mmsegmentation", 1),
             MMProvider("mmpretrain", "mmpretrain", 2))
