"""``otxlike build --addin LINE`` / ``--addin none``: the add-in list of model.py, and what
``otxlike find --addins`` / ``--modules`` show (docs/addins.md).

model.py holds the add-ins as a visible top-level list, one line each::

    # Add-ins (docs/addins.md): `otxlike build --addin LINE` adds one, `--addin none` removes them.
    addins = [
        '(LoRA(r=4).adapt_output): ...->(backbone.layer4.0.conv2){inout1}->...',
    ]

Every line is parsed (:mod:`otxlike.models.addin_syntax`), then the whole model is built with the
new list and run once (``configedit.commit``) before anything is written: a syntax error, an
unknown module path (with the closest ones), a module of the wrong kind, conflicting add-ins or
shapes that do not match come out as one line and model.py stays as it was.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from otxlike.configedit.commit import commit
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace

COMMENT = "# Add-ins (docs/addins.md): `otxlike build --addin LINE` adds one, `--addin none` removes them."
#: Constructor arguments that otxlike fills in, not the line.
FILLED = ("self", "module", "out_module", "side", "out_side")


@dataclass(frozen=True)
class AddinResult:
    """What :func:`set_addins` did.

    Attributes:
        lines: The add-in list of model.py now (canonical spelling).
        added: The lines this call added (empty for ``none``).
        trainable: Trainable parameters of the model with the list (numbers of scalars).
        total: All parameters of it.
        files: Files written.
        backup: Folder holding the previous versions, if any.
    """

    lines: tuple[str, ...]
    added: tuple[str, ...]
    trainable: int
    total: int
    files: tuple[Path, ...]
    backup: Path | None


@dataclass(frozen=True)
class AddinInfo:
    """One add-in class as ``otxlike find --addins`` lists it.

    Attributes:
        name: As written in a line, e.g. ``LoRA``.
        methods: Entry functions it offers (empty: a whole-module add-in).
        args: ``name=default`` of each argument a line may give.
        fits: Module kinds it fits (empty: any).
        summary: First line of its docstring.
        custom: Registered by the workspace (``@otxlike.register_addin``).
    """

    name: str
    methods: tuple[str, ...]
    args: tuple[str, ...]
    fits: tuple[str, ...]
    summary: str
    custom: bool


def list_addins(ws: Workspace | None = None) -> list[AddinInfo]:
    """The built-in add-ins, then the custom ones the workspace's custom module files register."""
    if ws is not None:
        ws.load_custom_modules()
    from otxlike.models.addins import addin_classes, is_builtin, offered

    infos = []
    for name, cls in addin_classes().items():
        params = inspect.signature(cls.__init__).parameters
        args = tuple(f"{n}={p.default!r}" if p.default is not p.empty else n
                     for n, p in params.items() if n not in FILLED and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        doc = getattr(cls, "summary", None) or (inspect.getdoc(cls) or "").split("\n")[0]
        infos.append(AddinInfo(name, offered(cls), args, tuple(k.__name__ for k in (cls.fits or ())), doc,
                               not is_builtin(name)))
    return infos


def _built(ws: Workspace, lines: list[str] | None = None):
    """``(model, scope, input_size)``: the workspace's model built (with ``lines`` attached, if given)."""
    from mmengine.registry import MODELS, DefaultScope

    scope, input_size, model = ws.model_context()  # also loads the workspace's custom modules
    try:
        with DefaultScope.overwrite_default_scope(scope):
            built = MODELS.build(dict(model))
    except Exception as exc:
        raise OtxlikeError(f"the workspace's model does not build: {type(exc).__name__}: {exc}",
                           "fix model.py first") from exc
    if lines:
        from otxlike.models.addins import attach

        attach(built, lines)
    return built, scope, input_size


def module_paths(ws: Workspace) -> list[tuple[str, str]]:
    """``(path, class name)`` of every module of the workspace's model (without its add-ins), the
    paths an add-in line names (``otxlike find --modules``)."""
    from otxlike.models.addins import module_paths as paths

    return paths(_built(ws)[0])


def set_addins(ws: Workspace, given: list[str]) -> AddinResult:
    """Add the lines ``given`` to model.py's add-in list, or remove the list (``given == ['none']``).

    Lines already in the list are not added twice. A line naming a custom add-in adds its module
    to ``custom_imports``.

    Raises:
        OtxlikeError: ``none`` together with lines; a line's syntax error (with the column); any
            error of :func:`otxlike.models.addins.attach`; shapes that do not match in the dry run.
            Nothing is written then.
    """
    from otxlike.configedit.source import ConfigSource, add_custom_imports
    from otxlike.models.addin_syntax import parse_line
    from otxlike.models.addins import addin_classes, count_params, is_builtin

    source = ConfigSource(ws.model_py.read_text(encoding="utf-8"))
    if "none" in given:
        if len(given) > 1:
            raise OtxlikeError("--addin none removes every add-in; it takes no other --addin",
                               "run 'otxlike build --addin none' alone")
        if not source.remove_top("addins", COMMENT[:10]):
            raise OtxlikeError("model.py has no add-ins to remove", "add one with 'otxlike build --addin LINE'")
        input_size = ws.model_context()[1]
        done = commit(ws, [(ws.model_py, source.result())], "addin", {"addins": []}, input_size=input_size,
                      subject="add-ins")
        model, _, _ = _built(ws)
        trainable, total = count_params(model)
        return AddinResult((), (), trainable, total, done.files, done.backup)
    current = source.literal(("addins",))
    if current is not None and (not isinstance(current, list) or not all(isinstance(x, str) for x in current)):
        raise OtxlikeError("model.py's addins is not a list of add-in lines",
                           "fix it by hand, or remove it with 'otxlike build --addin none'")
    current = [parse_line(x).text() for x in current or []]
    new = [parse_line(x).text() for x in given]  # syntax errors first, before anything is built
    added = [x for x in dict.fromkeys(new) if x not in current]
    lines = current + added
    model, scope, input_size = _built(ws, lines)  # paths, kinds, conflicts: one clear line each
    trainable, total = count_params(model)
    source.set_top_list("addins", lines, COMMENT)
    classes = addin_classes()
    custom = sorted({classes[parse_line(x).name].__module__ for x in lines if not is_builtin(parse_line(x).name)})
    if custom:
        add_custom_imports(source, custom)
    done = commit(ws, [(ws.model_py, source.result())], "addin", {"addins": lines}, input_size=input_size,
                  subject="add-ins")
    return AddinResult(tuple(lines), tuple(added), trainable, total, done.files, done.backup)
