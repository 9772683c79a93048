"""Bring your own backbone: registration, the backbone contract, and loading user code.

A custom backbone is a builder function or an ``nn.Module`` subclass registered under one or
more names with :func:`register_backbone`. The code lives in a workspace file
(``custom_backbones.py``, or the files listed under ``custom_modules`` in ``workspace.yaml``) or
in an installed package that exposes the entry-point group ``otxlike.backbones``. Custom
backbones are named ``custom.<name>`` (``otxlike find --backbone custom``).

The backbone contract (checked when the backbone is built):

- ``forward(x)`` takes x of shape (N, 3, H, W) and returns a tuple of feature maps
  (N, C_i, H / s_i, W / s_i), one per stage, in increasing stride;
- the module has ``out_channels`` and ``strides`` attributes: tuples with C_i and s_i (pixels).

:class:`otxlike.SequentialBackbone` turns an ``nn.Sequential`` of stages (or a flat sequence of layers,
grouped by resolution) into such a module. In a workspace's ``model.py`` the backbone is
``dict(type='otxlike.CustomBackbone', model_name=NAME, ...)`` and the code is loaded through
mmengine's ``custom_imports``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from otxlike.errors import OtxlikeError

ENTRY_POINT_GROUP = "otxlike.backbones"
DEFAULT_MODULE_FILE = "custom_backbones.py"


@dataclass(frozen=True)
class Registration:
    """One registered custom backbone.

    Attributes:
        name: Name without the ``custom.`` prefix, e.g. ``squeezenet1_1``.
        target: The builder function or ``nn.Module`` subclass.
        where: ``file:line`` of the definition (for error messages).
        module: Import name of the defining module (what ``custom_imports`` must import).
    """

    name: str
    target: Callable
    where: str
    module: str

    def build(self, **kwargs):
        """Call the builder (with ``model_name``) or the class with ``kwargs``."""
        if inspect.isclass(self.target):
            return self.target(**kwargs)
        return self.target(self.name, **kwargs)


_REGISTRY: dict[str, Registration] = {}


def _where(obj) -> str:
    try:
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        return getattr(obj, "__module__", "?")


def register_backbone(names: str | list[str] | tuple[str, ...]):
    """Decorator registering a backbone builder or ``nn.Module`` subclass under ``names``.

    A builder has the signature ``get_backbone(model_name, pretrained=None, **kwargs) -> nn.Module``
    and receives the registered name it is built as; a class is called with the keyword
    arguments. Either way the module must follow the backbone contract (module docstring).

    Example::

        @otxlike.register_backbone(["squeezenet1_0", "squeezenet1_1"])
        def get_backbone(model_name, pretrained=None, **kwargs):
            return otxlike.SequentialBackbone.from_layers(getattr(torchvision.models, model_name)(**kwargs).features)

    Raises:
        OtxlikeError: If a name is not an identifier-like string, or is already registered by
            a different definition (the message names both places). Re-importing the same file
            replaces its own registrations.
    """
    names = [names] if isinstance(names, str) else list(names)

    def decorate(target):
        where = _where(target)
        for name in names:
            if not isinstance(name, str) or not name or "." in name or not name.replace("-", "_").isidentifier():
                raise OtxlikeError(f"backbone name {name!r} at {where} is not a plain name",
                                   "use letters, digits and underscores, e.g. 'squeezenet1_1'")
            old = _REGISTRY.get(name)
            if old is not None and old.where != where:
                raise OtxlikeError(f"backbone name 'custom.{name}' is registered twice: at {old.where} and at {where}",
                                   "rename one of them")
            _REGISTRY[name] = Registration(name, target, where, target.__module__)
        return target

    return decorate


def registered() -> dict[str, Registration]:
    """The registered custom backbones by name (a copy)."""
    return dict(_REGISTRY)


def lookup(name: str) -> Registration:
    """The registration of ``name`` (without ``custom.``).

    Raises:
        OtxlikeError: If nothing registered that name.
    """
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise OtxlikeError(f"no custom backbone is registered as '{name}' (registered: {known})",
                           f"define it with @otxlike.register_backbone in {DEFAULT_MODULE_FILE}, or list its "
                           "file under custom_modules in workspace.yaml")
    return _REGISTRY[name]


def load_entry_points() -> list[str]:
    """Import every installed package module of the entry-point group ``otxlike.backbones``.

    Returns:
        The imported module names.

    Raises:
        OtxlikeError: If one fails to import (the message names the distribution).
    """
    from importlib.metadata import entry_points

    modules = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:
            dist = getattr(ep.dist, "name", "?")
            raise OtxlikeError(f"entry point '{ep.name}' of {dist} ({ep.value}) failed to import: "
                               f"{type(exc).__name__}: {exc}", f"fix or uninstall {dist}") from exc
        modules.append(ep.module)
    return modules


def workspace_module_files(root: Path, manifest: dict) -> list[Path]:
    """The workspace's custom module files: ``custom_backbones.py`` if present, then the files
    listed under ``custom_modules`` in workspace.yaml (listing a file never hides the default one).

    Raises:
        OtxlikeError: If a listed file is missing or not a ``.py`` file.
    """
    default = root / DEFAULT_MODULE_FILE
    files = [default] if default.is_file() else []
    listed = manifest.get("custom_modules") or []
    for item in [listed] if isinstance(listed, str) else listed:
        path = root / str(item)
        if path.suffix != ".py" or not path.is_file() or path.parent != root:
            raise OtxlikeError(f"custom module '{item}' listed in workspace.yaml is not a .py file in {root}",
                               "put the file in the workspace folder or fix custom_modules")
        if path not in files:
            files.append(path)
    return files


def _forget(module: str) -> None:
    """Drop the backbones and heads that ``module`` registered (it is being replaced)."""
    for key in [k for k, r in _REGISTRY.items() if r.module == module]:
        del _REGISTRY[key]
    heads = [k for k, m in _HEADS.items() if m == module]
    if heads:
        from otxlike.registry import MODELS

        for key in heads:
            del _HEADS[key]
            MODELS.module_dict.pop(key, None)


def load_workspace_modules(root: Path, manifest: dict) -> list[str]:
    """Make the workspace's custom modules importable and import them.

    The workspace folder goes first on ``sys.path`` (so ``custom_imports`` in model.py finds the
    files by module name); a module of the same name imported earlier from another folder is
    dropped first, with its registrations.

    Returns:
        The module names, e.g. ``['custom_backbones']``.

    Raises:
        OtxlikeError: If a file fails to import (the message gives the error) or registers a
            name that another file already registered.
    """
    files = workspace_module_files(root, manifest)
    if not files:
        return []
    folder = str(root)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    names = []
    for path in files:
        name = path.stem
        old = sys.modules.get(name)
        if old is not None and Path(getattr(old, "__file__", "") or "").resolve() != path.resolve():
            del sys.modules[name]
            _forget(name)
        try:
            importlib.import_module(name)
        except OtxlikeError:
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise OtxlikeError(f"{path.name} failed to import: {type(exc).__name__}: {exc}",
                               f"fix {path} (run 'python {path.name}' in the workspace to see the traceback)") from exc
        names.append(name)
    return names


def check_contract(module: Any, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(out_channels, strides)`` reported by a custom backbone module.

    Raises:
        OtxlikeError: If it is not an ``nn.Module`` or does not report both as equally long
            tuples of positive integers.
    """
    from torch import nn

    if not isinstance(module, nn.Module):
        raise OtxlikeError(f"custom backbone '{name}' returned {type(module).__name__}, not an nn.Module",
                           "the builder must return the backbone module")
    channels, strides = getattr(module, "out_channels", None), getattr(module, "strides", None)
    ok = all(isinstance(v, (list, tuple)) and v and all(isinstance(i, int) and i > 0 for i in v)
             for v in (channels, strides))
    if not ok or len(channels) != len(strides):
        raise OtxlikeError(
            f"custom backbone '{name}' ({type(module).__name__}) does not report out_channels and strides",
            "give it tuples out_channels and strides, one entry per stage, or wrap its stages in "
            "otxlike.SequentialBackbone",
        )
    return tuple(channels), tuple(strides)


def register_head(name: str | None = None):
    """Decorator registering a head class as ``otxlike.<name>`` in mmengine's model registry.

    The head declares ``num_classes`` and ``in_channels`` (``otxlike build --head`` sets
    ``in_channels`` from the backbone and keeps the model's ``num_classes``). For classification
    it follows mmpretrain's ``ClsHead`` interface (``loss``, ``predict``). In model.py it is
    ``head=dict(type='otxlike.<name>', ...)``, loaded through ``custom_imports``.

    Raises:
        OtxlikeError: If the class does not take ``num_classes`` and ``in_channels``, or the name
            is already registered by a different definition (the message names both places).
    """

    def decorate(cls):
        from otxlike.registry import MODELS

        key = name or cls.__name__
        params = inspect.signature(cls.__init__).parameters
        if not {"num_classes", "in_channels"} <= set(params):
            raise OtxlikeError(f"head {key} at {_where(cls)} must take num_classes and in_channels",
                               "add both arguments to its __init__")
        old = MODELS.module_dict.get(key)
        if old is not None and _where(old) != _where(cls):
            raise OtxlikeError(f"head name 'otxlike.{key}' is registered twice: at {_where(old)} and at {_where(cls)}",
                               "rename one of them")
        MODELS.register_module(name=key, module=cls, force=True)
        _HEADS[key] = cls.__module__
        return cls

    return decorate


_HEADS: dict[str, str] = {}
"""Custom head names -> their defining module (for ``custom_imports``)."""


def head_module(name: str) -> str | None:
    """The module defining custom head ``name``, or None if no custom head has that name."""
    return _HEADS.get(name)
