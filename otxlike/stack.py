"""The software stack otxlike runs on: which distributions matter, and their installed versions.

Versions are read from package metadata, without importing anything (``importlib.metadata``).
The backbone libraries' own distributions are declared by their providers
(:mod:`otxlike.catalog.providers`); this module holds what every part shares.
"""

from __future__ import annotations

from importlib import metadata

#: Distributions every model of otxlike is built on (they key the backbone index and the matrix).
CORE = ("torch", "torchvision", "mmengine", "mmcv")
#: Tools around the models (reported by ``otxlike doctor``).
TOOLS = ("numpy", "typer", "rich", "pyyaml")
#: The runtimes and tools of export / optimize / predict (``otxlike.deploy``).
DEPLOY = ("onnx", "onnxruntime", "openvino", "nncf")


def versions(names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None if missing), read without importing it."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def unique(names) -> tuple[str, ...]:
    """``names`` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(names))
