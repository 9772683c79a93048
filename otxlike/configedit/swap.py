"""``otxlike build --backbone``: put a backbone into a workspace's model.py, adapting its readers."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from otxlike.backbones.introspect import plain
from otxlike.backbones.shapes import FeatureShapes
from otxlike.backbones.spec import MISSING, BackboneSpec
from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, dump_yaml
from otxlike.workspace.workspace import Workspace

DEFAULT_INPUT_SIZE = 64  # pixels; used when data_pipeline.py declares no input_size


@dataclass(frozen=True)
class SwapResult:
    """What ``swap_backbone`` did.

    Attributes:
        spec: The backbone.
        values: Its argument values as in ``backbone.yaml`` (without ``type``).
        missing: Required arguments with no value yet; when non-empty model.py was not changed.
        shapes: Measured output shapes of the backbone (None when ``missing``).
        edits: ``{consumer: {arg: value}}`` set on the modules reading the backbone.
        files: Files written.
        backup: Folder holding the previous versions of overwritten files, if any.
    """

    spec: BackboneSpec
    values: dict
    missing: tuple[str, ...] = ()
    shapes: FeatureShapes | None = None
    edits: dict = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    backup: Path | None = None


def default_values(spec: BackboneSpec, template_defaults: dict | None = None) -> tuple[dict, tuple[str, ...]]:
    """Argument values for a fresh ``backbone.yaml``.

    Every argument whose default is plain data is written; a required argument takes its first
    option; the template's ``backbone_defaults`` override arguments the backbone takes.

    Returns:
        ``(values, missing)``: values by name, and required arguments without any known option.
    """
    values: dict[str, Any] = {}
    missing = []
    for arg in spec.args:
        if arg.required:
            values[arg.name] = arg.options[0] if arg.options else None
            if not arg.options:
                missing.append(arg.name)
        else:
            value = plain(arg.default)
            if value is not MISSING:
                values[arg.name] = value
    for key, value in (template_defaults or {}).items():
        if spec.arg(key) is not None:
            values[key] = value
    return values, tuple(missing)


def backbone_yaml_text(spec: BackboneSpec, values: dict, missing: tuple[str, ...]) -> str:
    """The text of ``backbone.yaml``: OTX's ``backbone: {type: ..., ...}`` with guiding comments."""
    lines = [
        f"# backbone.yaml: the backbone of this workspace ({spec.name}).",
        f"# Source: {spec.source}",
        "# Edit the values, then apply them with: otxlike build --backbone backbone.yaml",
    ]
    for arg in spec.required:
        opts = ", ".join(map(str, arg.options)) if arg.options else "none known: enter a value"
        lines.append(f"# Required: {arg.name} (options: {opts})")
    body = dump_yaml({"backbone": {"type": spec.name, **values}}).splitlines()
    for i, line in enumerate(body):
        key = line.strip().split(":", 1)[0]
        if line.startswith("  ") and not line.startswith("   ") and key in missing:
            body[i] = f"{line}  # REQUIRED: fill this in"
    return "\n".join(lines + body) + "\n"


def read_typed_entry(path: Path, key: str, example: str, regenerate: str) -> dict:
    """The mapping ``key:`` of a user-edited YAML file (``backbone.yaml``, ``head.yaml``), which
    must hold a string ``type``.

    Args:
        path: The file.
        key: Top-level key, e.g. ``backbone``.
        example: Shown after "with a 'type'" in the error, e.g. ``' such as mmdet.ResNet'``.
        regenerate: The command that writes the file afresh, for the hint.

    Raises:
        OtxlikeError: If the file is missing, not YAML (with the line), or lacks ``key.type``.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OtxlikeError(f"cannot read {path} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise OtxlikeError(f"{path} is not valid YAML{where}", "fix the file and run again") from exc
    entry = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise OtxlikeError(f"{path} must hold a mapping '{key}:' with a 'type'{example}",
                           f"regenerate it with '{regenerate}'")
    return dict(entry)


def read_backbone_yaml(path: Path) -> tuple[BackboneSpec, dict]:
    """Parse and check a user's ``backbone.yaml``.

    Raises:
        OtxlikeError: If the file is missing or not YAML, has no ``backbone.type``, names an unknown
            backbone, or sets arguments the backbone does not take.
    """
    from otxlike.backbones.catalog import get_backbone

    values = read_typed_entry(path, "backbone", " such as mmdet.ResNet",
                              "otxlike build --backbone <library>.<Name>")
    spec = get_backbone(values.pop("type"))
    unknown = [k for k in values if spec.arg(k) is None]
    if unknown and not spec.accepts_kwargs:
        raise OtxlikeError(
            f"{path}: {spec.name} takes no argument {', '.join(map(repr, unknown))}",
            f"its arguments: {', '.join(a.name for a in spec.args)}",
        )
    return spec, values


def model_values(spec: BackboneSpec, values: dict) -> dict:
    """The values that go into model.py: required ones and those that differ from the default."""
    out = {}
    for key, value in values.items():
        arg = spec.arg(key)
        if arg is None or arg.required or plain(arg.default) != value:
            out[key] = tuple(value) if arg is not None and isinstance(arg.default, tuple) and isinstance(value, list) else value
    return out


def _dry_run(model, scope: str, input_size: int) -> None:
    """One forward pass of a whole model on a (2, 3, S, S) zero batch, in eval mode.

    mmdet detectors run ``predict`` (two-stage ones need image metadata for their RPN); other
    libraries' models run ``tensor`` mode.
    """
    import torch

    x = torch.zeros(2, 3, input_size, input_size)
    with torch.no_grad():
        if scope == "mmdet":
            from mmdet.structures import DetDataSample

            shape = (input_size, input_size)
            meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                        scale_factor=(1.0, 1.0))
            model(x, [DetDataSample(metainfo=meta) for _ in range(2)], mode="predict")
        else:
            model(x, mode="tensor")


def _validate(ws: Workspace, text: str, input_size: int) -> None:
    """Load the new model.py with mmengine, build the whole model and run one forward pass.

    Raises:
        OtxlikeError: If any step fails; the message says which.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".py", dir=ws.root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        cfg = Config.fromfile(tmp)
    except Exception as exc:
        raise OtxlikeError(f"the rewritten model.py does not load: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    scope = cfg.get("default_scope")
    try:
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(cfg.model)
            model.eval()  # not chained: some modules' train() returns None
            _dry_run(model, scope, input_size)
    except Exception as exc:
        raise OtxlikeError(
            f"the model with the new backbone does not run: {type(exc).__name__}: {exc}",
            "nothing was changed; try other backbone arguments",
        ) from exc


def _old_strides(model: dict, scope: str, input_size: int) -> tuple[int, ...] | None:
    """Output strides of the backbone now in model.py, or None if it does not build."""
    from otxlike.backbones.shapes import infer_feature_shapes

    try:
        return infer_feature_shapes(model["backbone"], scope, input_size).strides
    except (OtxlikeError, KeyError):
        return None


def workspace_scope_and_size(ws: Workspace) -> tuple[str, int, dict]:
    """The default scope and ``model`` dict of model.py, and ``input_size`` of data_pipeline.py.

    Raises:
        OtxlikeError: If either file cannot be loaded by mmengine.
    """
    cfg = ws.config()
    return cfg.get("default_scope", "mmengine"), int(cfg.get("input_size", DEFAULT_INPUT_SIZE)), cfg.model.to_dict()


def add_custom_imports(source, modules: list[str]) -> None:
    """Add ``modules`` to model.py's ``custom_imports`` (mmengine imports them when it loads
    the config; see ``mmengine/config/config.py``), keeping the ones already listed."""
    current = source.literal(("custom_imports", "imports")) or []
    imports = list(dict.fromkeys([*current, *modules]))
    if imports != list(current):
        source.set_top("custom_imports", {"imports": imports, "allow_failed_imports": False})


def swap_backbone(ws: Workspace, target: str) -> SwapResult:
    """Put a backbone into the workspace.

    Args:
        ws: The workspace.
        target: A backbone name (``mmdet.RegNet``) or the path of an edited ``backbone.yaml``.

    With a name, ``backbone.yaml`` is (re)written with every argument; if a required argument
    has no known option, the result lists it in ``missing`` and model.py is left as it was. With
    a file, its values are used as they are. Then the backbone is built and measured at the
    workspace's input size, the consumers of its features are adapted (see
    :mod:`otxlike.configedit.adapters`), the new model is built and run once, and only then are
    the files replaced (previous versions go to ``.backup/<time>/``).

    Raises:
        OtxlikeError: For an unknown backbone, a malformed or incomplete backbone.yaml, a backbone
            that fails to build or run, or a model that cannot be adapted. Nothing is written then.
    """
    from otxlike.backbones.catalog import get_backbone, provider
    from otxlike.backbones.shapes import infer_feature_shapes
    from otxlike.configedit.adapters import plan_channel_edits, plan_stages
    from otxlike.configedit.source import ConfigSource

    ws.load_custom_modules()  # custom.<name> backbones of the workspace
    is_file = target.endswith((".yaml", ".yml")) or Path(target).is_file()
    backup = ws.new_backup_dir()
    written: list[Path] = []
    if is_file:
        spec, values = read_backbone_yaml(Path(target))
        missing = tuple(a.name for a in spec.required if values.get(a.name) is None)
        if missing:
            raise OtxlikeError(
                f"{target}: required argument {', '.join(missing)} of {spec.name} is still empty",
                f"fill it in (see {spec.source}) and run again",
            )
    else:
        spec = get_backbone(target)
        values, missing = default_values(spec, ws.template.backbone_defaults)
        if missing:
            atomic_write_text(ws.backbone_yaml, backbone_yaml_text(spec, values, missing), backup)
            ws.record("backbone.yaml", {"backbone": spec.name, "missing": list(missing)})
            return SwapResult(spec, values, missing, files=(ws.backbone_yaml,))

    scope, input_size, model = workspace_scope_and_size(ws)
    lib = provider(spec.library)
    backbone_cfg = lib.model_cfg(spec, model_values(spec, values))
    shapes = infer_feature_shapes(backbone_cfg, scope, input_size)
    stages = plan_stages(model, _old_strides(model, scope, input_size), shapes.strides)
    if stages.keep is not None:
        backbone_cfg = lib.select_outputs(spec, backbone_cfg, values, stages.keep)
        if "out_indices" in backbone_cfg and "out_indices" in values:
            values = {**values, "out_indices": list(backbone_cfg["out_indices"])}
        shapes = infer_feature_shapes(backbone_cfg, scope, input_size)
    edits = plan_channel_edits(model, shapes)
    for consumer, args in stages.edits.items():
        edits.setdefault(consumer, {}).update(args)

    source = ConfigSource(ws.model_py.read_text(encoding="utf-8"))
    source.replace(("model", "backbone"), backbone_cfg)
    for consumer, args in edits.items():
        for key, value in args.items():
            source.set_key(("model", *consumer.split(".")), key, value)
    if hasattr(lib, "modules"):  # user code: model.py must import it (mmengine's custom_imports)
        add_custom_imports(source, lib.modules(spec))
    text = source.result()
    _validate(ws, text, input_size)

    if not is_file:
        atomic_write_text(ws.backbone_yaml, backbone_yaml_text(spec, values, ()), backup)
        written.append(ws.backbone_yaml)
    atomic_write_text(ws.model_py, text, backup)
    written.append(ws.model_py)
    ws.record("backbone", {"backbone": spec.name, "channels": list(shapes.channels)}, backbone=spec.name)
    return SwapResult(spec, values, (), shapes, edits, tuple(written), backup if backup.exists() else None)
