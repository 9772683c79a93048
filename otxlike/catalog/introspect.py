"""Read constructor arguments and their valid options from a backbone class or builder.

Rules (checked against mmdet 3.3.0 / mmseg 1.2.2 / torchvision 0.28):
- Required arguments are parameters without a default, collected up the class hierarchy while a
  constructor forwards ``**kwargs`` to its parent: ``ResNeXt(groups=1, base_width=4, **kwargs)``
  inherits ``depth`` from ``ResNet``.
- A parent parameter that the subclass already passes to ``super().__init__`` itself (e.g.
  ``ResNetV1d`` passes ``deep_stem=True``) is not offered again: passing it twice is a TypeError.
- Options of a required ``depth``/``arch`` argument are the keys of the class's ``arch_settings``
  or ``arch_zoo`` table (inherited tables count: ``SSDVGG.depth`` takes mmcv ``VGG`` depths).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any, Callable

from otxlike.catalog.spec import MISSING, ArgSpec

#: Arguments whose valid values are the keys of the class's architecture table.
ARCH_ARGS = ("depth", "arch")
#: Class attributes that hold an architecture table (mmdet/mmseg/mmcv use ``arch_settings``,
#: mmpretrain uses ``arch_zoo``).
ARCH_TABLES = ("arch_settings", "arch_zoo")
_SKIP = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def arch_options(cls: type, arg: str) -> tuple:
    """Valid values of ``arg`` declared by ``cls`` (or a parent), or ``()`` if none."""
    if arg not in ARCH_ARGS:
        return ()
    for table in ARCH_TABLES:
        value = getattr(cls, table, None)
        if isinstance(value, dict) and value:
            return tuple(value)
    return ()


def _annotation(p: inspect.Parameter) -> str:
    if p.annotation is inspect.Parameter.empty:
        return ""
    return p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)


def arg_docs(obj: Any) -> dict[str, str]:
    """First line of each parameter's entry in a Google/OpenMMLab ``Args:`` docstring section.

    ``depth (int): Depth of resnet, from {18, 34, 50, 101, 152}.`` gives
    ``{'depth': 'Depth of resnet, from {18, 34, 50, 101, 152}.'}``.
    """
    docs: dict[str, str] = {}
    for line in (inspect.getdoc(obj) or "").splitlines():
        match = re.match(r"^\s{0,8}(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.+)$", line)
        if match and match.group(1).lstrip("*") not in docs:
            docs[match.group(1).lstrip("*")] = match.group(3).strip()
    return docs


def _fixed_by_super_call(init: Callable) -> set[str]:
    """Keyword names a constructor passes to ``super().__init__(...)`` itself."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
            and isinstance(node.func.value, ast.Call)
            and getattr(node.func.value.func, "id", None) == "super"
        ):
            names.update(k.arg for k in node.keywords if k.arg)
    return names


def class_args(cls: type, stop_modules: tuple[str, ...] = ("torch.", "mmengine.")) -> tuple[tuple[ArgSpec, ...], bool]:
    """Constructor arguments of ``cls`` over its class hierarchy.

    Args:
        cls: The backbone class.
        stop_modules: Module prefixes of base classes whose parameters are not the backbone's
            (``nn.Module``, mmengine's ``BaseModule``).

    Returns:
        ``(args, accepts_kwargs)``: the arguments in order (own first, then inherited), and whether
        the last constructor visited still takes ``**kwargs``.
    """
    args: dict[str, ArgSpec] = {}
    fixed: set[str] = set()
    accepts_kwargs = False
    inherited = False
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        if klass is object or klass.__module__.startswith(stop_modules):
            break
        init = vars(klass)["__init__"]
        params = list(inspect.signature(init).parameters.values())[1:]
        docs = arg_docs(klass)
        for p in params:
            if p.kind in _SKIP or p.name in args or p.name in fixed:
                continue
            default = MISSING if p.default is inspect.Parameter.empty else p.default
            options = arch_options(cls, p.name) if default is MISSING else ()
            args[p.name] = ArgSpec(p.name, default, options, inherited, _annotation(p), docs.get(p.name, ""))
        accepts_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        if not accepts_kwargs:
            break
        fixed |= _fixed_by_super_call(init)
        inherited = True
    return tuple(args.values()), accepts_kwargs


def function_args(fn: Callable, skip: tuple[str, ...] = ()) -> tuple[tuple[ArgSpec, ...], bool]:
    """Arguments of a builder function (e.g. ``torchvision.models.resnet18``).

    Returns:
        ``(args, accepts_kwargs)`` as for :func:`class_args`.
    """
    params = inspect.signature(fn).parameters.values()
    docs = arg_docs(fn)
    args = tuple(
        ArgSpec(p.name, MISSING if p.default is inspect.Parameter.empty else p.default,
                annotation=_annotation(p), doc=docs.get(p.name, ""))
        for p in params
        if p.kind not in _SKIP and p.name not in skip
    )
    return args, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def plain(value: Any) -> Any:
    """``value`` as plain YAML data (tuples become lists), or :data:`MISSING` if it has none.

    Defaults such as classes or functions cannot be written to ``backbone.yaml``; they are left to
    the constructor.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        return MISSING if any(v is MISSING for v in items) else items
    if isinstance(value, dict):
        items = {k: plain(v) for k, v in value.items()}
        ok = all(isinstance(k, str) for k in items) and all(v is not MISSING for v in items.values())
        return items if ok else MISSING
    return MISSING
