"""``otxlike build --head``: swap the classification head of a workspace (``head.yaml``).

The head keeps the model's ``num_classes``; its ``in_channels`` is the channel count of the
backbone's last map (the value ``build --backbone`` keeps up to date in model.py). Custom heads
registered with :func:`otxlike.register_head` are named ``custom.<Name>`` and become
``otxlike.<Name>`` in model.py, loaded through ``custom_imports``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from otxlike.configedit.commit import commit, is_yaml_target, read_typed_entry, user_file
from otxlike.errors import OtxlikeError
from otxlike.fileio import dump_yaml
from otxlike.workspace.workspace import Workspace

HEAD_YAML = "head.yaml"
#: Arguments otxlike sets from the model; the rest come from the head's defaults or head.yaml.
MODEL_ARGS = ("num_classes", "in_channels")
#: Arguments carried over from the current head when the new one takes them.
KEPT_ARGS = ("loss", "topk")


@dataclass(frozen=True)
class HeadResult:
    """What :func:`swap_head` did.

    Attributes:
        type: The head type as written in model.py, e.g. ``otxlike.CosineClsHead``.
        values: Its arguments as written (without ``type``).
        files: Files written.
        backup: Folder holding the previous versions, if any.
    """

    type: str
    values: dict
    files: tuple[Path, ...]
    backup: Path | None


def _resolve(name: str, scope: str):
    """``(type for model.py, class, module to import or None)`` for a head name.

    Raises:
        OtxlikeError: If no head of that name is registered.
    """
    from otxlike.models.custom import head_module

    if name.startswith("custom."):
        short = name.split(".", 1)[1]
        module = head_module(short)
        if module is None:
            raise OtxlikeError(f"no custom head is registered as '{short}'",
                               "define it with @otxlike.register_head in the workspace's custom_backbones.py "
                               "(or a file listed under custom_modules in workspace.yaml)")
        from otxlike.registry import MODELS as OTXLIKE_MODELS

        return f"otxlike.{short}", OTXLIKE_MODELS.get(short), module
    import importlib

    # the scope's own registry (the root's get() does not look into the default scope's child);
    # its modules register lazily, on import_from_location (DESIGN.md, section 2)
    registry = importlib.import_module(f"{scope}.registry").MODELS
    registry.import_from_location()
    cls = registry.get(name)
    if name.startswith(f"{scope}."):
        name = name.split(".", 1)[1]  # unscoped in model.py, as the template writes its own types
    if cls is None:
        raise OtxlikeError(f"'{scope}' has no head type '{name}'",
                           "give a head class of the template's library (e.g. LinearClsHead) or custom.<Name>")
    return name, cls, None


def swap_head(ws: Workspace, target: str) -> HeadResult:
    """Put the head ``target`` (a type name or an edited ``head.yaml``) into the workspace.

    With a name, every argument with a plain default is written to ``head.yaml``; ``loss`` and
    ``topk`` are kept from the current head when the new one takes them. The model is built and
    run once before anything is written (previous versions go to ``.backup/<time>/``).

    Raises:
        OtxlikeError: If the workspace is not a classification one, the head is unknown, lacks
            ``num_classes``/``in_channels``, has a required argument without a value, or the
            model does not run with it. Nothing is written then.
    """
    from otxlike.catalog.introspect import class_args, plain
    from otxlike.catalog.spec import MISSING
    from otxlike.configedit.source import ConfigSource, add_custom_imports

    key = ws.task_spec.head_key
    if key is None:
        raise OtxlikeError(f"--head swaps a classification head; this workspace is for {ws.task}",
                           "edit model.py's heads by hand for other tasks")
    scope, input_size, model = ws.model_context()  # also loads the workspace's custom modules
    current = model.get(key) or {}
    is_file = is_yaml_target(target)
    given = read_typed_entry(user_file(ws, target), "head", "", "otxlike build --head TYPE") if is_file else {"type": target}
    name = given.pop("type")
    type_name, cls, module = _resolve(name, scope)
    args, accepts_kwargs = class_args(cls)
    known = {a.name: a for a in args}
    if not set(MODEL_ARGS) <= set(known):
        raise OtxlikeError(f"head {name} does not take {' and '.join(a for a in MODEL_ARGS if a not in known)}",
                           "a classification head must declare num_classes and in_channels")
    unknown = [k for k in given if k not in known]
    if unknown and not accepts_kwargs:
        raise OtxlikeError(f"{target}: {name} takes no argument {', '.join(map(repr, unknown))}",
                           f"its arguments: {', '.join(known)}")
    values = {}
    for arg in args:
        if arg.name in MODEL_ARGS:
            continue
        if arg.name in given:
            values[arg.name] = given[arg.name]
        elif arg.name in KEPT_ARGS and arg.name in current:
            values[arg.name] = current[arg.name]
        elif not arg.required and plain(arg.default) is not MISSING:
            values[arg.name] = plain(arg.default)
    values.update({k: v for k, v in given.items() if k not in known})
    missing = [a.name for a in args if a.required and a.name not in MODEL_ARGS and a.name not in values]
    if missing:
        raise OtxlikeError(f"head {name} needs a value for {', '.join(missing)}",
                           "write them in head.yaml and run 'otxlike build --head head.yaml'")
    values = {"num_classes": current.get("num_classes"), "in_channels": current.get("in_channels"), **values}

    source = ConfigSource(ws.model_py.read_text(encoding="utf-8"))
    source.replace(("model", key), {"type": type_name, **values})
    if module is not None:
        add_custom_imports(source, [module])
    writes = []
    if not is_file:
        header = (f"# head.yaml: the classification head of this workspace ({name}).\n"
                  "# num_classes and in_channels follow the model; edit the rest, then apply with:\n"
                  "#   otxlike build --head head.yaml\n")
        writes.append((ws.root / HEAD_YAML, header + dump_yaml({"head": {"type": name, **values}})))
    writes.append((ws.model_py, source.result()))
    done = commit(ws, writes, "head", {"head": name}, input_size=input_size, subject="head")
    return HeadResult(type_name, values, done.files, done.backup)
