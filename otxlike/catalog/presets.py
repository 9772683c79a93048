"""Presets for structured backbone arguments, mined from the configs the libraries ship.

Some backbones take a required argument that their class does not enumerate: mmdet/mmseg
``HRNet(extra=...)`` (the stages' widths and blocks), mmseg ``BiSeNetV1(backbone_cfg=...)``,
``ICNet``, ``STDCContextPathNet``, mmdet ``TridentResNet(num_branch=..., ...)``. The libraries'
own configs (``<package>/.mim/configs/**/*.py``) hold real values for them: every distinct value a
backbone's config gives a required argument becomes a preset named after the first config that
gives it (``extra: hrnetv2p-w18``). ``build --backbone`` fills in the first preset and writes its
name to backbone.yaml; :func:`resolve` turns names into values before the backbone is built.

Loading the configs takes a minute, so the table is mined once per library version: shipped with
otxlike for the pinned versions (``presets.json``, written by ``python -m otxlike.catalog.presets``),
else mined into the user cache on first use.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

SHIPPED = Path(__file__).with_name("presets.json")
#: Library -> PyPI distribution whose ``.mim/configs`` are mined.
PACKAGES = {"mmdet": "mmdet", "mmseg": "mmsegmentation", "mmpretrain": "mmpretrain"}


def _candidate_configs(root: Path, names: set[str]) -> list[Path]:
    """Config files under ``root`` that name one of the backbone classes ``names`` as a ``type``,
    or inherit (``_base_``, transitively) from one that does; shared ``_base_`` files excluded."""
    texts = {p: p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*.py"))}
    pattern = re.compile(r"type\s*=\s*['\"](?:\w+\.)?(%s)['\"]" % "|".join(map(re.escape, sorted(names))))
    found = {p for p, text in texts.items() if pattern.search(text)}
    while True:
        stems = {p.name for p in found}
        more = {p for p, text in texts.items() if p not in found and "_base_" in text
                and any(stem in text for stem in stems)}
        if not more:
            break
        found |= more
    return sorted(p for p in found if "_base_" not in p.parts)


#: A config-name token that says how long or on what a model was trained (``20e``, ``4xb4-160k``,
#: ``coco``, ``cityscapes-512x1024``): where a preset's name stops.
_SCHEDULE = re.compile(r"^(\d+x|\d+e|\d+k|\d+xb\d+|coco|cityscapes|ade20k|voc|nyu|lvis)(\b|-|$)")


def _prefix(stem: str) -> str:
    """A config name up to its schedule or dataset (``fcn_hr18_4xb2-160k_cityscapes-512x1024`` ->
    ``fcn_hr18``)."""
    tokens = []
    for token in stem.split("_"):
        if tokens and _SCHEDULE.match(token):
            break
        tokens.append(re.sub(r"-\d+[ekx]$", "", token))
    return "_".join(tokens)


def _names(configs: list[Path], backbone: str) -> list[str]:
    """One name per config of a backbone's presets: the token naming the backbone where that
    tells them apart (``faster-rcnn_hrnetv2p-w18-1x_coco`` -> ``hrnetv2p-w18``), else the
    config's name up to its schedule or dataset (``bisenetv1_r18-d32``), else the whole name."""
    key = re.sub(r"v\d+$", "", backbone.lower())[:5]
    for pick in (lambda c: next((re.sub(r"-\d+[ekx]$", "", t) for t in c.stem.split("_") if key in t.lower()), None),
                 lambda c: _prefix(c.stem), lambda c: c.stem):
        names = [pick(c) for c in configs]
        if None not in names and len(set(names)) == len(names):
            return names
    return [c.stem for c in configs]


def _natural(text: str) -> list:
    """Sort key putting ``r18`` before ``r50`` before ``r101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _backbones(node):
    """Every dict with a ``type`` under a config's ``model`` (the backbone and nested configs)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield node
        for value in node.values():
            yield from _backbones(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _backbones(value)


#: Keys of a config's backbone that are not carried along with a preset: the type, weights
#: (otxlike's --weights decides), and what the templates set themselves.
_NOT_COMPANIONS = frozenset({"type", "init_cfg", "pretrained", "norm_eval", "frozen_stages", "_delete_"})


@functools.lru_cache(maxsize=None)
def _own_types(library: str) -> frozenset:
    """Names registered in ``library``'s own MODELS registry (not in mmengine's or mmcv's)."""
    import importlib

    try:
        registry = importlib.import_module(f"{library}.registry").MODELS
    except ImportError:
        return frozenset()
    registry.import_from_location()
    return frozenset(registry.module_dict)


def _portable(node, scope: str):
    """A config value made to build from any workspace: nested ``type`` names of the config's
    library's own modules scoped to it (``ResNetV1c`` in an mmseg config -> ``mmseg.ResNetV1c``;
    the workspace's default scope may be another library's; ``ReLU`` stays as it is), ``SyncBN`` replaced by ``BN`` (one
    process on the CPU has nothing to synchronise with), as plain data. Keys that have no plain
    form are dropped."""
    from otxlike.catalog.introspect import plain
    from otxlike.catalog.spec import MISSING

    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "type" and isinstance(value, str):
                own = _own_types(scope)
                value = "BN" if value == "SyncBN" else f"{scope}.{value}" if value in own else value
            else:
                value = _portable(value, scope)
            if value is not MISSING:
                out[key] = value
        return out
    if isinstance(node, (list, tuple)):
        items = [_portable(v, scope) for v in node]
        return MISSING if any(v is MISSING for v in items) else items
    return plain(node)


def mine(library: str, wanted: dict[str, list[str]]) -> dict:
    """Presets of ``library`` for the required arguments ``wanted`` (``{class: [arg, ...]}``),
    from its own configs; for a class none of them uses, from the other libraries' configs that
    name it scoped to ``library`` or name a class of the same name in their own scope (mmdet's
    ``timm_example`` configs give ``mmpretrain.TIMMBackbone``'s ``model_name``, and mmseg's
    ``TIMMBackbone``, which takes the same timm names, gets those too).

    Returns:
        ``{"version": ..., "presets": {class: {arg: [{"name", "config", "value", "with"}, ...]}}}``:
        each value plain data (:func:`_portable`), distinct values only, in natural order of
        their names; ``with`` holds the other arguments the same config gives the backbone
        (ICNet's ``layer_channels`` for a ResNet-18 ``backbone_cfg``), which ``build`` writes
        with the first preset.
    """
    import importlib

    from mmengine.config import Config

    from otxlike.catalog.spec import MISSING
    from otxlike.stack import versions

    own: dict[str, dict[str, list]] = {}
    foreign: dict[str, dict[str, list]] = {}  # the same class name, scoped to another library
    for lib in (library, *(name for name in PACKAGES if name != library)):
        try:
            root = Path(importlib.import_module(lib).__file__).parent / ".mim" / "configs"
        except ImportError:
            continue
        for path in _candidate_configs(root, set(wanted)):
            try:
                model = Config.fromfile(str(path)).get("model")
            except Exception:  # configs needing packages or files that are not installed
                continue
            for node in _backbones(model.to_dict() if model is not None else {}):
                scope, _, cls = node["type"].rpartition(".")
                table = own if (scope or lib) == library else foreign
                args = wanted.get(cls, ())
                node = _portable(node, scope or lib)
                companions = {k: v for k, v in node.items() if k not in args and k not in _NOT_COMPANIONS}
                for arg in args:
                    value = node.get(arg, MISSING)
                    if value is MISSING or value is None:
                        continue
                    known = table.setdefault(cls, {}).setdefault(arg, [])
                    if all(json.dumps(p["value"], sort_keys=True) != json.dumps(value, sort_keys=True) for p in known):
                        known.append({"path": path, "config": f"{lib} configs/{path.relative_to(root)}",
                                      "value": value, "with": companions})
    table = {cls: {arg: own.get(cls, {}).get(arg) or found for arg, found in args.items()}
             for cls, args in foreign.items()}
    for cls, args in own.items():
        table.setdefault(cls, {}).update(args)
    for cls, args in table.items():
        for arg, found in args.items():
            names = _names([p["path"] for p in found], cls)
            if all(isinstance(p["value"], str) and re.fullmatch(r"[\w.\-]+", p["value"]) for p in found):
                names = [p["value"] for p in found]  # a name such as a timm model: itself
            for preset, name in zip(found, names):
                preset["name"] = name
            for preset in found:
                del preset["path"]
            found.sort(key=lambda p: _natural(p["name"]))
    return {"version": versions((PACKAGES[library],))[PACKAGES[library]], "presets": table}


@functools.lru_cache(maxsize=None)  # read once per process
def table(library: str) -> dict:
    """``{class: {arg: [preset, ...]}}`` of ``library`` for its installed version (empty for
    libraries without shipped configs). Mined on first use when otxlike ships none for it."""
    from otxlike.catalog.index import index_path, shipped_or_mined
    from otxlike.stack import versions

    package = PACKAGES.get(library)
    if package is None:
        return {}
    return shipped_or_mined(SHIPPED, library, versions((package,))[package],
                            index_path(library, package, kind="presets"),
                            lambda: mine(library, _wanted(library)))["presets"]


def _wanted(library: str) -> dict[str, list[str]]:
    """Required arguments without declared options of every backbone of ``library``."""
    from otxlike.catalog.lookup import provider

    return {spec.short_name: [a.name for a in spec.required if not a.options]
            for spec in provider(library).introspect() if any(not a.options for a in spec.required)}


def presets_of(spec, arg: str) -> list[dict]:
    """The presets of argument ``arg`` of ``spec`` (a :class:`BackboneSpec`), possibly empty."""
    return table(spec.library).get(spec.short_name, {}).get(arg, [])


def resolve(spec, values: dict) -> dict:
    """``values`` with preset names (``extra: hrnetv2p-w18``) replaced by their values; anything
    else, a value typed in full included, is kept as it is.

    Raises:
        OtxlikeError: A name that is no preset, given to an argument whose presets are all
            structures (a dict or list is expected there, not a string).
    """
    from otxlike.errors import OtxlikeError

    out = dict(values)
    for arg in spec.required:
        value, presets = out.get(arg.name), presets_of(spec, arg.name)
        if not isinstance(value, str) or not presets:
            continue
        match = next((p for p in presets if p["name"] == value), None)
        if match is not None:
            out[arg.name] = match["value"]
        elif not any(isinstance(p["value"], str) for p in presets):
            raise OtxlikeError(f"{spec.name}: '{value}' is not a preset of {arg.name}",
                               f"presets: {', '.join(p['name'] for p in presets)}; or write the value itself")
    return out


if __name__ == "__main__":
    docs = {}
    for lib in PACKAGES:
        docs[lib] = mine(lib, _wanted(lib))
        counts = {cls: {a: len(v) for a, v in args.items()} for cls, args in docs[lib]["presets"].items()}
        print(lib, docs[lib]["version"], counts)
    SHIPPED.write_text(json.dumps(docs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
