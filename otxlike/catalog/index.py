"""An on-disk index of introspected backbones, so ``otxlike find`` need not import the libraries.

Importing mmdet's models takes ~15 s on 2 CPU cores (DESIGN.md section 6). The index holds each
library's :class:`BackboneSpec` list as JSON in the user cache folder, in a file whose name is a
hash of the installed versions of otxlike, the library and the stack under it; any upgrade gives
a new name, so a stale index is never read. Defaults that are not plain data are kept as their
``repr`` (shown by ``find``, never written to a config).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from otxlike.catalog.introspect import plain
from otxlike.catalog.providers.base import Provider
from otxlike.catalog.spec import MISSING, ArgSpec, BackboneSpec
from otxlike.fileio import atomic_write_text, cache_dir
from otxlike.stack import CORE, versions

#: Distributions whose versions key every library's index (besides the library's own).
STACK = ("otxlike", *CORE)
FORMAT = 9  # bump when the JSON layout or what it holds changes (5: timm weights, 6-9: presets)


class Repr:
    """A default value known only by its ``repr`` (e.g. a class or a function)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Repr) and other.text == self.text


def index_path(library: str, package: str, kind: str = "backbones") -> Path:
    """The ``kind`` file (e.g. ``backbones``) of ``library`` for the versions installed now."""
    dists = (*STACK, package)
    installed = versions(dists)
    pins = "|".join(f"{d}=={installed[d] or 'none'}" for d in dists)
    key = hashlib.sha256(f"{FORMAT}|{pins}".encode()).hexdigest()[:16]
    return cache_dir() / f"{kind}-{library}-{key}.json"


def read_cache(path: Path):
    """The JSON document at ``path``, or None if it is missing or unreadable (then rebuilt)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_cache(path: Path, doc) -> None:
    """Write ``doc`` as JSON to ``path`` atomically; a read-only cache folder only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc))
    except OSError:
        pass


def shipped_or_mined(shipped: Path, key: str | None, version: str, cache: Path, mine) -> dict:
    """A table mined from an installed library: the one shipped with otxlike (``shipped``, under
    ``key`` if given) when its ``version`` is the installed one, else the copy in the user cache
    (``cache``), else ``mine()``, written to that cache.

    ``mine`` returns the document (a dict with ``version``)."""
    doc = read_cache(shipped) or {}
    doc = (doc.get(key) or {}) if key is not None else doc
    if doc.get("version") == version:
        return doc
    doc = read_cache(cache)
    if doc is None:
        doc = mine()
        write_cache(cache, doc)
    return doc


def spec_to_json(spec: BackboneSpec) -> dict:
    """The JSON form of a spec, as stored in the index and printed by ``find --json``."""
    def default(arg: ArgSpec):
        if arg.required:
            return {"required": True}
        value = plain(arg.default)
        return {"default": value} if value is not MISSING else {"default_repr": repr(arg.default)}

    return {
        "name": spec.name, "library": spec.library, "source": spec.source, "accepts_kwargs": spec.accepts_kwargs,
        "weights": spec.weights,
        "args": [{"name": a.name, "options": list(a.options), "inherited": a.inherited, "annotation": a.annotation,
                  "doc": a.doc, **default(a)} for a in spec.args],
    }


def _decode(doc: dict) -> BackboneSpec:
    args = []
    for a in doc["args"]:
        if a.get("required"):
            default = MISSING
        elif "default_repr" in a:
            default = Repr(a["default_repr"])
        else:
            default = a["default"]
        args.append(ArgSpec(a["name"], default, tuple(a["options"]), a["inherited"], a["annotation"], a["doc"]))
    return BackboneSpec(doc["name"], doc["library"], doc["source"], tuple(args), doc["accepts_kwargs"], doc["weights"])


def indexed_backbones(provider: Provider) -> tuple[tuple[BackboneSpec, ...], bool]:
    """The provider's backbones from the index, introspecting (and indexing) them on a miss.

    Returns:
        ``(specs, hit)``: the specs, and whether they came from the index.

    Raises:
        OtxlikeError: If the library is not installed (from the provider).
    """
    if not provider.cacheable:
        return tuple(provider.specs()), False
    path = index_path(provider.name, provider.package)
    doc = read_cache(path)
    try:
        return tuple(_decode(d) for d in doc["backbones"]), True
    except (KeyError, TypeError):
        pass  # missing or malformed: rebuild
    specs = tuple(provider.specs())
    write_cache(path, {"format": FORMAT, "backbones": [spec_to_json(s) for s in specs]})
    return specs, False
