"""Backbone providers, one module per library family.

Every module here exposes ``PROVIDERS``: a tuple of objects following
:class:`~otxlike.catalog.providers.base.Provider`. They are collected once, ordered by their
``order`` attribute, so adding a library is adding one module to this folder.
"""

from __future__ import annotations

import importlib
import pkgutil

from otxlike.catalog.providers.base import Provider


def _collect() -> dict[str, Provider]:
    found: list[Provider] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            found.extend(importlib.import_module(f"{__name__}.{info.name}").PROVIDERS)
    return {p.name: p for p in sorted(found, key=lambda p: p.order)}


PROVIDERS: dict[str, Provider] = _collect()
"""Providers by library name (the prefix of their backbone names), in listing order."""
