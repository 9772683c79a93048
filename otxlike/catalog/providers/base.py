"""The provider contract: what the catalog needs from a backbone library."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol, runtime_checkable

from otxlike.catalog.spec import BackboneSpec
from otxlike.errors import OtxlikeError


@runtime_checkable
class Provider(Protocol):
    """One backbone library (mmdet, torchvision, ...), listed live from the installed package.

    Attributes:
        name: Library name and the prefix of its backbone names, e.g. ``mmdet``.
        package: The PyPI distribution to install if it is missing (also keys the on-disk index).
        scope: mmengine default scope to build its ``model_cfg`` dicts in on their own
            (``mmdet``; ``mmengine`` for the ``otxlike.*`` wrappers, whose type is scoped).
        cacheable: Whether its specs may be kept in the on-disk index (False for user code).
        order: Position in listings (``find``, ``--help``), lowest first.
    """

    name: str
    package: str
    scope: str
    order: int
    cacheable: bool = True

    def specs(self) -> list[BackboneSpec]:
        """Introspect every backbone the installed library offers.

        Raises:
            OtxlikeError: If the library is not installed.
        """
        ...

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for a workspace's ``model.py`` with argument ``values``."""
        ...

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` changed to return only the outputs at positions ``keep`` of what it returns now.

        Raises:
            OtxlikeError: If the backbone cannot select its outputs.
        """
        ...

    def all_outputs(self, spec: BackboneSpec, cfg: dict) -> dict | None:
        """``cfg`` asking for every stage's output, for a backbone that returns fewer by default,
        or None when there is nothing to widen (the swap then keeps what the defaults give)."""
        return None

    def custom_imports(self, spec: BackboneSpec) -> list[str]:
        """Modules ``model.py`` must import (mmengine's ``custom_imports``) to build ``spec``."""
        return []

    def pretrained(self, spec: BackboneSpec, values: dict) -> dict | None:
        """The ``init_cfg`` that loads the weights the library publishes for ``spec`` built with
        ``values`` (``dict(type='Pretrained', checkpoint=...)``), or None if it publishes none."""
        return None


def with_published_weights(provider: Provider, specs: list[BackboneSpec]) -> list[BackboneSpec]:
    """``specs`` with :attr:`BackboneSpec.weights` set from ``provider.pretrained`` for the values
    ``build --backbone`` writes by default."""
    import dataclasses

    from otxlike.catalog.values import default_values

    out = []
    for spec in specs:
        init = provider.pretrained(spec, default_values(spec)[0])
        out.append(dataclasses.replace(spec, weights=init["checkpoint"] if init else None))
    return out


def with_presets(provider: Provider, specs: list[BackboneSpec]) -> list[BackboneSpec]:
    """``specs`` whose required arguments without declared options get the names of their presets
    (:mod:`otxlike.catalog.presets`) as options."""
    import dataclasses

    from otxlike.catalog.presets import table

    presets = table(provider.name)
    out = []
    for spec in specs:
        found = presets.get(spec.short_name, {})
        args = tuple(dataclasses.replace(a, options=tuple(p["name"] for p in found[a.name]))
                     if a.required and not a.options and found.get(a.name) else a for a in spec.args)
        out.append(dataclasses.replace(spec, args=args))
    return out


def keep_out_indices(cfg: dict, keep: tuple[int, ...], defaults: tuple[int, ...] | None = None) -> dict:
    """``cfg`` of a wrapper whose ``out_indices`` index the wrapped network's outputs, narrowed
    to the outputs at positions ``keep`` of what it returns now.

    Args:
        cfg: The backbone dict; its ``out_indices`` (None or absent: the network's default set).
        keep: Positions in what the backbone returns now.
        defaults: The indices the network returns when ``out_indices`` is None: timm's
            ``features_only`` default (``(1, ..., 5)`` for DLA, the last three blocks of a ViT;
            :func:`otxlike.models.timm_backbone.default_out_indices`). None: positions and indices
            are the same (otxlike's torchvision and custom wrappers return every output).
    """
    current = cfg.get("out_indices")
    if current is None:
        current = range(max(keep) + 1) if defaults is None else defaults
    return {**cfg, "out_indices": tuple(current[i] for i in keep)}


def keep_timm_levels(cfg: dict, keep: tuple[int, ...], **model_kwargs) -> dict:
    """:func:`keep_out_indices` for a wrapper of timm's ``features_only`` model (otxlike's
    ``TimmBackbone``, mmseg's and mmpretrain's ``TIMMBackbone``): with no ``out_indices`` in
    ``cfg``, positions map through timm's own default levels
    (:func:`otxlike.models.timm_backbone.default_out_indices` of ``cfg["model_name"]`` built with
    ``model_kwargs``), which for DLA, TResNet and CSATv2 start at 1, not 0.

    Raises:
        Exception: timm's own, if the model does not build with ``model_kwargs``.
    """
    defaults = None
    if cfg.get("out_indices") is None:
        from otxlike.models.timm_backbone import default_out_indices

        defaults = default_out_indices(cfg["model_name"], **model_kwargs)
    return keep_out_indices(cfg, keep, defaults)


def require(module: str, library: str, package: str) -> ModuleType:
    """Import ``module`` of a backbone library.

    Raises:
        OtxlikeError: If it cannot be imported (the hint installs ``package``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OtxlikeError(f"backbone library '{library}' cannot be imported ({exc})",
                           f"install it with: pip install {package}") from exc
