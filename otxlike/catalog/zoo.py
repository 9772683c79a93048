"""mmpretrain's model zoo as a table of backbone weights: which published ImageNet-1k classifier has
a backbone built exactly like the one a workspace asks for.

mmpretrain lists its models in ``<mmpretrain>/.mim/model-index.yml`` (read by
``mmpretrain.apis.ModelHub``): each has a config (whose ``model.backbone`` is the backbone's
``type`` and arguments) and a ``Weights`` URL whose keys are ``backbone.*`` / ``head.*``. Reading
the ~550 configs takes ~25 s, so the table is mined once per mmpretrain version: shipped with
otxlike for the pinned version (``mmpretrain_zoo.json``, written by
``python -m otxlike.catalog.zoo``), else mined into the user cache on first use.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

#: Arguments that do not change which tensors a backbone has, or only add or drop whole layers
#: (mmengine loads non-strictly and reports those): a zoo entry may differ from the wanted
#: backbone in them.
NOT_ARCHITECTURE = frozenset({
    "out_indices", "frozen_stages", "norm_eval", "drop_path_rate", "drop_rate", "attn_drop_rate", "init_cfg",
    "norm_cfg", "act_cfg", "conv_cfg", "with_cp", "zero_init_residual", "out_type", "final_norm",
    "interpolate_mode", "style", "pretrained", "output_cls_token", "gap_before_final_norm", "pad_small_map",
    "out_after_downsample", "frozen", "layer_cfgs", "patch_cfg", "norm_eval_pre", "with_cls_token",
    "num_classes",  # VGG, LeNet: a classifier inside the backbone (-1: none), not loaded into ours
})

SHIPPED = Path(__file__).with_name("mmpretrain_zoo.json")


def mine() -> dict:
    """The zoo table of the installed mmpretrain: ``{"version": ..., "backbones": {type: [entry]}}``
    where an entry is ``{"model", "weights", "args"}`` (the config's backbone arguments as plain
    data), for every model with weights whose result is ImageNet-1k image classification, in the
    model index's order.

    Raises:
        ImportError: If mmpretrain is not installed.
    """
    import mmpretrain
    from mmengine.config import Config
    from mmpretrain.apis import ModelHub

    from otxlike.catalog.introspect import plain
    from otxlike.catalog.spec import MISSING

    ModelHub._register_mmpretrain_models()  # mmpretrain/apis/model.py: reads model-index.yml once
    table: dict[str, list] = {}
    for name, model in ModelHub._models_dict.items():
        results = model.results or []
        if not model.weights or not any(r.task == "Image Classification" and r.dataset == "ImageNet-1k"
                                         for r in results):
            continue
        try:
            backbone = Config.fromfile(model.config).model.get("backbone")
        except Exception:  # a few configs use the new lazy-import style, which fromfile refuses
            continue
        if not backbone or not isinstance(backbone.get("type"), str):
            continue
        backbone = backbone.to_dict()
        kind = backbone.pop("type").split(".")[-1]
        args = {k: v for k, v in ((k, plain(v)) for k, v in backbone.items()) if v is not MISSING}
        table.setdefault(kind, []).append({"model": name, "weights": model.weights, "args": args})
    return {"version": mmpretrain.__version__, "backbones": table}


@functools.lru_cache(maxsize=None)  # read once per process
def table() -> dict:
    """The zoo table for the installed mmpretrain (see the module docstring), or an empty one
    if mmpretrain is missing."""
    from otxlike.catalog.index import index_path, shipped_or_mined
    from otxlike.stack import versions

    installed = versions(("mmpretrain",))["mmpretrain"]
    if installed is None:
        return {"version": None, "backbones": {}}
    return shipped_or_mined(SHIPPED, None, installed, index_path("mmpretrain", "mmpretrain", kind="zoo"), mine)


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def find_weights(spec, values: dict) -> dict | None:
    """The zoo entry whose backbone is built like ``spec`` with ``values``: same class, and every
    argument outside :data:`NOT_ARCHITECTURE` equal (the entry's config value, else the class
    default, against ``values``, else the class default). The first such entry in the model
    index, or None.

    Args:
        spec: A :class:`~otxlike.catalog.spec.BackboneSpec` of mmpretrain.
        values: Its argument values (as in backbone.yaml).
    """
    from otxlike.catalog.introspect import plain
    from otxlike.catalog.spec import MISSING

    defaults = {a.name: (MISSING if a.required else plain(a.default)) for a in spec.args}
    for entry in table()["backbones"].get(spec.short_name, []):
        args = entry["args"]
        if any(k not in defaults for k in args if k not in NOT_ARCHITECTURE):
            continue  # an argument the class does not declare (through **kwargs): cannot compare
        fits = True
        for name, default in defaults.items():
            if name in NOT_ARCHITECTURE:
                continue
            expected = args.get(name, default)
            wanted = plain(values[name]) if name in values else default
            if expected is MISSING or wanted is MISSING or not _same(expected, wanted):
                fits = False
                break
        if fits:
            return entry
    return None


if __name__ == "__main__":
    doc = mine()
    SHIPPED.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{SHIPPED}: mmpretrain {doc['version']}, {sum(map(len, doc['backbones'].values()))} models")
