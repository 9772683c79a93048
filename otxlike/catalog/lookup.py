"""Backbones by name over every provider, with suggestions for near misses."""

from __future__ import annotations

import difflib
from functools import lru_cache

from otxlike.catalog.providers import PROVIDERS
from otxlike.catalog.providers.base import Provider
from otxlike.catalog.spec import BackboneSpec
from otxlike.errors import OtxlikeError

__all__ = ["PROVIDERS", "get_backbone", "list_backbones", "provider"]


def provider(library: str) -> Provider:
    """The provider called ``library``.

    Raises:
        OtxlikeError: If no provider has that name (the message lists the known ones).
    """
    if library not in PROVIDERS:
        close = difflib.get_close_matches(library, PROVIDERS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise OtxlikeError(
            f"unknown backbone library '{library}'", f"{hint}known libraries: {', '.join(PROVIDERS)}"
        )
    return PROVIDERS[library]


@lru_cache(maxsize=None)
def list_backbones(library: str) -> tuple[BackboneSpec, ...]:
    """Every backbone of ``library``, introspected from the installed package (cached per process).

    Raises:
        OtxlikeError: If the library is unknown or not installed.
    """
    return tuple(provider(library).specs())


def get_backbone(name: str) -> BackboneSpec:
    """Resolve a full backbone name such as ``mmdet.RegNet`` or ``torchvision.resnet18``.

    Raises:
        OtxlikeError: If the name has no library prefix, the library is unknown, or the library
            has no such backbone (the message suggests the closest names).
    """
    library, _, short = name.partition(".")
    if not short:
        raise OtxlikeError(
            f"backbone name '{name}' has no library prefix",
            f"use <library>.<name>, e.g. mmdet.ResNet; libraries: {', '.join(PROVIDERS)}",
        )
    lib = provider(library)
    specs = {s.name: s for s in (list_backbones(library) if lib.cacheable else lib.specs())}
    if name in specs:
        return specs[name]
    by_lower = {s.name.lower(): s for s in specs.values()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
    hint = "did you mean " + ", ".join(by_lower[c].name for c in close) + "? " if close else ""
    raise OtxlikeError(
        f"'{library}' has no backbone called '{short}'",
        f"{hint}see 'otxlike find --backbone {library}'",
    )
