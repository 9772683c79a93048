"""Backbones registered by users with :func:`otxlike.register_backbone` (``custom.<name>``)."""

from __future__ import annotations

import inspect

from otxlike.catalog.introspect import class_args, function_args
from otxlike.catalog.providers.base import Provider, keep_out_indices
from otxlike.catalog.spec import BackboneSpec


class CustomProvider(Provider):
    """Backbones registered with :func:`otxlike.register_backbone` (``custom.<name>``).

    Lists the registrations of installed packages (entry-point group ``otxlike.backbones``) and of
    the workspace modules loaded so far (:meth:`otxlike.workspace.Workspace.load_custom_modules`).
    User code changes often, so these specs are never cached on disk.
    """

    name = "custom"
    package = "otxlike"
    scope = "mmengine"
    order = 5
    cacheable = False

    def specs(self) -> list[BackboneSpec]:
        """One spec per registered name; builder arguments after ``model_name`` are its arguments.

        Raises:
            OtxlikeError: If an entry-point package fails to import.
        """
        from otxlike.models.custom import load_entry_points, registered

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
        return keep_out_indices(cfg, keep)

    def custom_imports(self, spec: BackboneSpec) -> list[str]:
        """The module that ``custom_imports`` must import for ``spec``."""
        from otxlike.models.custom import lookup

        return [lookup(spec.short_name).module]


PROVIDERS = (CustomProvider(),)
