"""timm's models as backbones through ``features_only`` (``otxlike.TimmBackbone``)."""

from __future__ import annotations

import inspect

from otxlike.catalog.introspect import function_args
from otxlike.catalog.providers.base import Provider, keep_timm_levels, require, with_published_weights
from otxlike.catalog.spec import BackboneSpec


class TimmProvider(Provider):
    """timm's models, used as backbones through ``features_only`` (``otxlike.TimmBackbone``).

    Every name of ``timm.list_models()`` is listed; the arguments shown are those of the model's
    entrypoint function (``pretrained`` for most; the rest go through ``**kwargs`` to the model).
    """

    name = "timm"
    package = "timm"
    scope = "mmengine"
    order = 4

    def specs(self) -> list[BackboneSpec]:
        """One spec per model of ``timm.list_models()``.

        Raises:
            OtxlikeError: If timm is not installed.
        """
        timm = require("timm", self.name, self.package)
        out = []
        for model_name in timm.list_models():
            entry = timm.models.model_entrypoint(model_name)
            args, _ = function_args(entry)
            out.append(BackboneSpec(name=f"timm.{model_name}", library=self.name,
                                    source=inspect.getsourcefile(inspect.unwrap(entry)) or "",
                                    args=args, accepts_kwargs=True))
        return with_published_weights(self, out)

    def pretrained(self, spec: BackboneSpec, values: dict) -> dict | None:
        """timm's default published weights of the model (its ``pretrained_cfg``: the first tag of
        ``timm.list_pretrained(name)``), as ``timm://<name>.<tag>`` (see
        :mod:`otxlike.models.timm_backbone`), or None if timm publishes none."""
        import timm

        cfg = timm.models.get_pretrained_cfg(spec.short_name)
        if cfg is None or not (cfg.hf_hub_id or cfg.url):
            return None
        return {"type": "Pretrained", "checkpoint": f"timm://{spec.short_name}.{cfg.tag}" if cfg.tag
                else f"timm://{spec.short_name}"}

    def model_cfg(self, spec: BackboneSpec, values: dict) -> dict:
        """The ``backbone`` dict for ``model.py``."""
        return {"type": "otxlike.TimmBackbone", "model_name": spec.short_name, **values}

    def select_outputs(self, spec: BackboneSpec, cfg: dict, values: dict, keep: tuple[int, ...]) -> dict:
        """``cfg`` returning only the levels at positions ``keep``, through timm's ``out_indices``
        (positions in timm's default levels when ``cfg`` gives none)."""
        return keep_timm_levels(cfg, keep, **{k: v for k, v in cfg.items()
                                              if k not in ("type", "model_name", "init_cfg", "pretrained")})


PROVIDERS = (TimmProvider(),)
