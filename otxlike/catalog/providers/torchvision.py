"""torchvision's classification models as backbones (``otxlike.TorchvisionBackbone``)."""

from __future__ import annotations

import inspect
from functools import lru_cache

from otxlike.catalog.introspect import function_args
from otxlike.catalog.providers.base import Provider, require, with_published_weights
from otxlike.catalog.spec import BackboneSpec


class TorchvisionProvider(Provider):
    """torchvision's classification models, used as backbones through their feature maps.

    Each model is wrapped by ``otxlike.TorchvisionBackbone``, which returns the output of each
    stage with ``torchvision.models.feature_extraction.create_feature_extractor``.
    """

    name = "torchvision"
    package = "torchvision"
    scope = "mmengine"
    order = 3

    def specs(self) -> list[BackboneSpec]:
        """One spec per model of ``torchvision.models.list_models(module=torchvision.models)``."""
        models = require("torchvision.models", self.name, self.package)
        out = []
        for model_name in models.list_models(module=models):
            builder = models.get_model_builder(model_name)
            args, _ = function_args(builder, skip=("progress",))
            out.append(
                BackboneSpec(
                    name=f"torchvision.{model_name}",
                    library=self.name,
                    source=inspect.getsourcefile(inspect.unwrap(builder)) or "",  # builders are decorated
                    args=args,
                    accepts_kwargs=True,
                )
            )
        return with_published_weights(self, out)

    def pretrained(self, spec: BackboneSpec, values: dict) -> dict | None:
        """torchvision's DEFAULT weights of the model (``torchvision://<name>.default`` in mmengine's
        table, ``mmengine/runner/checkpoint.py:get_torchvision_models``)."""
        key = f"{spec.short_name}.default"
        return {"type": "Pretrained", "checkpoint": f"torchvision://{key}"} if key in _torchvision_table() else None

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``, with the stage nodes found for this model."""
        from otxlike.models.torchvision_backbone import find_stage_nodes

        kwargs = {k: v for k, v in values.items() if k != "weights"}
        nodes = find_stage_nodes(spec.short_name, **kwargs)
        return {"type": "otxlike.TorchvisionBackbone", "model_name": spec.short_name, "return_nodes": nodes, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the stages at positions ``keep`` (fewer ``return_nodes``)."""
        return {**cfg, "return_nodes": [cfg["return_nodes"][i] for i in keep]}


@lru_cache(maxsize=1)
def _torchvision_table() -> dict:
    from mmengine.runner.checkpoint import get_torchvision_models

    return get_torchvision_models()


PROVIDERS = (TorchvisionProvider(),)
