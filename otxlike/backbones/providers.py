"""Backbone providers: one object per library, each listing what the installed library offers.

A provider has a ``name`` (the prefix of its backbone names), ``specs()`` (introspected live from
the installed library, never a hand-kept list) and ``model_cfg(spec, values)`` (the ``backbone``
dict to put in a workspace's ``model.py``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from otxlike.backbones.introspect import class_args, function_args
from otxlike.backbones.spec import BackboneSpec
from otxlike.errors import OtxlikeError


class MMProvider:
    """Backbones of an OpenMMLab library (mmdet, mmseg, mmpretrain).

    A backbone is a class exported by ``<lib>.models.backbones`` (its ``__all__``) and registered
    in ``<lib>.registry.MODELS``; mmseg's backbones folder also registers helpers such as
    ``DeconvModule`` that are not exported, and are not listed.

    Args:
        name: Import name and backbone-name prefix, e.g. ``mmdet``.
        package: The PyPI distribution to install if the import fails, e.g. ``mmsegmentation``.
    """

    def __init__(self, name: str, package: str) -> None:
        self.name = name
        self.package = package

    def _import(self) -> tuple[Any, Any]:
        try:
            backbones = importlib.import_module(f"{self.name}.models.backbones")
            registry = importlib.import_module(f"{self.name}.registry")
        except ImportError as exc:
            raise OtxlikeError(
                f"backbone library '{self.name}' cannot be imported ({exc})",
                f"install it with: pip install {self.package}",
            ) from exc
        registry.MODELS.import_from_location()
        return backbones, registry.MODELS

    def specs(self) -> list[BackboneSpec]:
        """Introspect every backbone class of the installed library.

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

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``: the scoped type plus the given values."""
        return {"type": spec.name, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the outputs at positions ``keep``, through ``out_indices``.

        Raises:
            OtxlikeError: If the backbone has no ``out_indices`` argument.
        """
        current = cfg.get("out_indices", values.get("out_indices"))
        if spec.arg("out_indices") is None or not isinstance(current, (list, tuple)):
            raise OtxlikeError(f"{spec.name} has no out_indices to pick the outputs the model needs",
                               "pick a backbone whose output strides match the template's")
        return {**cfg, "out_indices": tuple(current[i] for i in keep)}


class TorchvisionProvider:
    """torchvision's classification models, used as backbones through their feature maps.

    Each model is wrapped by ``otxlike.TorchvisionBackbone``, which returns the output of each
    stage with ``torchvision.models.feature_extraction.create_feature_extractor``.
    """

    name = "torchvision"
    package = "torchvision"

    def specs(self) -> list[BackboneSpec]:
        """One spec per model of ``torchvision.models.list_models(module=torchvision.models)``."""
        try:
            import torchvision
            from torchvision.models import get_model_builder, list_models
        except ImportError as exc:
            raise OtxlikeError(f"torchvision cannot be imported ({exc})", "install it with: pip install torchvision") from exc
        out = []
        for model_name in list_models(module=torchvision.models):
            builder = get_model_builder(model_name)
            args, _ = function_args(builder, skip=("progress",))
            out.append(
                BackboneSpec(
                    name=f"torchvision.{model_name}",
                    library=self.name,
                    source=inspect.getsourcefile(inspect.unwrap(builder)) or "",  # builders are decorated
                    args=args,
                    accepts_kwargs=True,
                )
            )
        return out

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``, with the stage nodes found for this model."""
        from otxlike.backbones.torchvision_backbone import find_stage_nodes

        kwargs = {k: v for k, v in values.items() if k != "weights"}
        nodes = find_stage_nodes(spec.short_name, **kwargs)
        return {"type": "otxlike.TorchvisionBackbone", "model_name": spec.short_name, "return_nodes": nodes, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the stages at positions ``keep`` (fewer ``return_nodes``)."""
        return {**cfg, "return_nodes": [cfg["return_nodes"][i] for i in keep]}


def _keep_out_indices(cfg: dict, keep: tuple[int, ...]) -> dict:
    """``cfg`` of an otxlike wrapper whose ``out_indices`` (None: every output) index the wrapped
    network's outputs, narrowed to the outputs at positions ``keep`` of what it returns now."""
    current = cfg.get("out_indices")
    return {**cfg, "out_indices": tuple(keep if current is None else (current[i] for i in keep))}


class TimmProvider:
    """timm's models, used as backbones through ``features_only`` (``otxlike.TimmBackbone``).

    Every name of ``timm.list_models()`` is listed; the arguments shown are those of the model's
    entrypoint function (``pretrained`` for most; the rest go through ``**kwargs`` to the model).
    """

    name = "timm"
    package = "timm"

    def specs(self) -> list[BackboneSpec]:
        """One spec per model of ``timm.list_models()``.

        Raises:
            OtxlikeError: If timm is not installed.
        """
        try:
            import timm
        except ImportError as exc:
            raise OtxlikeError(f"timm cannot be imported ({exc})", "install it with: pip install timm") from exc
        out = []
        for model_name in timm.list_models():
            entry = timm.models.model_entrypoint(model_name)
            args, _ = function_args(entry)
            out.append(BackboneSpec(name=f"timm.{model_name}", library=self.name,
                                    source=inspect.getsourcefile(inspect.unwrap(entry)) or "",
                                    args=args, accepts_kwargs=True))
        return out

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``."""
        return {"type": "otxlike.TimmBackbone", "model_name": spec.short_name, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the levels at positions ``keep``, through timm's ``out_indices``."""
        return _keep_out_indices(cfg, keep)


class CustomProvider:
    """Backbones registered with :func:`otxlike.register_backbone` (``custom.<name>``).

    Lists the registrations of installed packages (entry-point group ``otxlike.backbones``) and of
    the workspace modules loaded so far (:meth:`otxlike.workspace.workspace.Workspace.load_custom_modules`).
    User code changes often, so these specs are never cached on disk.
    """

    name = "custom"
    package = "otxlike"
    cacheable = False

    def specs(self) -> list[BackboneSpec]:
        """One spec per registered name; builder arguments after ``model_name`` are its arguments.

        Raises:
            OtxlikeError: If an entry-point package fails to import.
        """
        from otxlike.custom import load_entry_points, registered

        load_entry_points()
        out = []
        for name, reg in sorted(registered().items()):
            if inspect.isclass(reg.target):
                args, kwargs = class_args(reg.target)
            else:
                args, kwargs = function_args(reg.target, skip=("model_name",))
            out.append(BackboneSpec(name=f"custom.{name}", library=self.name, source=reg.where, args=args,
                                    accepts_kwargs=kwargs))
        return out

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py`` (``otxlike.CustomBackbone``)."""
        return {"type": "otxlike.CustomBackbone", "model_name": spec.short_name, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the stages at positions ``keep`` (``out_indices``)."""
        return _keep_out_indices(cfg, keep)

    def modules(self, spec: BackboneSpec) -> list[str]:
        """The module that ``custom_imports`` must import for ``spec``."""
        from otxlike.custom import lookup

        return [lookup(spec.short_name).module]
