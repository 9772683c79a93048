"""torchvision classification models as multi-scale backbones for mmengine configs.

``TorchvisionBackbone`` is registered as ``otxlike.TorchvisionBackbone``. It builds
``torchvision.models.get_model(model_name)`` and returns the output of each stage with
``torchvision.models.feature_extraction.create_feature_extractor``, so necks and heads of
mmdet/mmseg/mmpretrain can consume it like any other backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mmengine.model import BaseModule
from torch import nn

from otxlike.errors import OtxlikeError
from otxlike.models.features import PROBE_SIZE, stride_of
from otxlike.registry import MODELS

#: Top-level children that belong to the classifier, not to the feature extractor.
_CLASSIFIER_NAMES = {"avgpool", "classifier", "fc", "head", "heads", "dropout", "flatten"}


def _build(model_name: str, weights: str | None = None, **kwargs) -> nn.Module:
    """``torchvision.models.get_model`` with weights from a local file or a torchvision enum name.

    Raises:
        OtxlikeError: If the model name is unknown or the weights cannot be loaded or downloaded.
    """
    from torchvision.models import get_model, list_models

    if model_name not in list_models():
        raise OtxlikeError(f"torchvision has no model '{model_name}'", "see 'otxlike find --backbone torchvision'")
    local = weights is not None and Path(weights).suffix in {".pth", ".pt"}
    if local and not Path(weights).is_file():
        raise OtxlikeError(f"weights file {weights} does not exist", "give a local .pth file path or null")
    try:
        model = get_model(model_name, weights=None if local else weights, **kwargs)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError: no network here
        raise OtxlikeError(
            f"could not get torchvision weights '{weights}' for {model_name} ({exc})",
            "set weights: null, or give a local .pth file path",
        ) from exc
    if local:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except RuntimeError as exc:
            raise OtxlikeError(f"weights file {weights} does not fit torchvision.{model_name} "
                               f"({str(exc).splitlines()[0]})", f"give weights of {model_name}") from exc
    return model


def _channels_last(out: torch.Tensor) -> bool:
    """True if a 4-D output of a square probe image is (N, H, W, C), as Swin's stages return."""
    return out.shape[1] == out.shape[2] and out.shape[2] != out.shape[3]


def find_stage_nodes(model_name: str, **kwargs) -> list[str]:
    """Names of the modules whose outputs are the model's stages (one per stride >= 4).

    A probe image of ``PROBE_SIZE`` x ``PROBE_SIZE`` runs through the model with forward hooks on
    its top-level children and on the children of top-level ``nn.Sequential`` blocks. Stages
    that return (N, H, W, C) maps (torchvision's Swin) count by their H. For each
    output stride (rounded to a power of two) the module that finishes last is that stride's stage (so ``layer1`` wins over
    ``layer1.1``). The classifier part (``avgpool``, ``fc``, ``classifier``, ...) is not probed.
    This matches torchvision's own detection backbones (``layer1``..``layer4`` for ResNets).

    Returns:
        Module names in increasing stride, e.g. ``['layer1', 'layer2', 'layer3', 'layer4']``.

    Raises:
        OtxlikeError: If no module yields a 4-D feature map with stride >= 4.
    """
    model = _build(model_name, **kwargs).eval()
    seen: dict[int, str] = {}
    hooks = []

    def record(name):
        def hook(_module, _inputs, out):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] > 0:
                width = out.shape[2] if _channels_last(out) else out.shape[-1]
                stride = stride_of(PROBE_SIZE, int(width))
                if stride >= 4:
                    seen[stride] = name  # the last module to finish at a stride wins

        return hook

    for name, child in model.named_children():
        if name in _CLASSIFIER_NAMES or isinstance(child, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear)):
            continue
        hooks.append(child.register_forward_hook(record(name)))
        if isinstance(child, nn.Sequential):
            for sub, grandchild in child.named_children():
                hooks.append(grandchild.register_forward_hook(record(f"{name}.{sub}")))
    with torch.no_grad():
        try:
            model(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
        except Exception as exc:  # e.g. ViTs demand 224x224: not a multi-scale backbone
            raise OtxlikeError(
                f"torchvision.{model_name} does not run on a {PROBE_SIZE}x{PROBE_SIZE} image ({exc})",
                "pick a convolutional model",
            ) from exc
        finally:
            for h in hooks:
                h.remove()
    if not seen:
        raise OtxlikeError(
            f"torchvision.{model_name} has no stage with a feature map", "pick a convolutional model"
        )
    return [seen[s] for s in sorted(seen)]


@MODELS.register_module()
class TorchvisionBackbone(BaseModule):
    """A torchvision classification model returning its stage feature maps.

    Args:
        model_name: A name from ``torchvision.models.list_models()``, e.g. ``resnet18``.
        return_nodes: Module names of the stages (see :func:`find_stage_nodes`, which is used
            when None).
        out_indices: Which stages to return (indices into ``return_nodes``); all when None.
        weights: None (random init), a torchvision weights name such as ``'DEFAULT'`` (downloads;
            fails offline with an :class:`OtxlikeError`), or a local ``.pth`` file.
        init_cfg: mmengine init config; None keeps torchvision's own initialisation.
        **kwargs: Passed to the torchvision builder (e.g. ``width_mult``).

    Attributes:
        out_channels: C_i of each returned stage.
        strides: s_i of each returned stage in pixels (rounded to a power of two), both read
            from the one probe at ``PROBE_SIZE`` that also finds the (N, H, W, C) stages.

    Shapes:
        ``forward(x)``: x is (N, 3, H, W); returns a tuple with one (N, C_i, H / s_i, W / s_i)
        tensor per selected stage, in increasing stride ``s_i``.
    """

    def __init__(self, model_name: str, return_nodes: list[str] | None = None, out_indices=None,
                 weights: str | None = None, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        from torchvision.models.feature_extraction import create_feature_extractor

        nodes = list(return_nodes or find_stage_nodes(model_name, **kwargs))
        if out_indices is not None:
            nodes = [nodes[i] for i in out_indices]
        self.model_name = model_name
        self.return_nodes = nodes
        model = _build(model_name, weights=weights, **kwargs)
        self.body = create_feature_extractor(model, return_nodes={n: str(i) for i, n in enumerate(nodes)})
        training = self.body.training
        with torch.no_grad():  # which stages are (N, H, W, C), to permute them to (N, C, H, W)
            probe = self.body.eval()(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
        self.body.train(training)
        self.channels_last = [_channels_last(out) for out in probe.values()]
        maps = [out.permute(0, 3, 1, 2) if last else out for out, last in zip(probe.values(), self.channels_last)]
        self.out_channels = tuple(int(m.shape[1]) for m in maps)
        self.strides = tuple(stride_of(PROBE_SIZE, int(m.shape[-1])) for m in maps)

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=...)`` into the wrapped network.

        A torchvision checkpoint (``torchvision://resnet18.default``) holds the classification
        model's keys (``conv1.weight``, ``fc.weight``): it is loaded into ``self.body`` with
        mmengine's ``load_checkpoint`` (``mmengine/runner/checkpoint.py``), non-strictly since the
        classifier layers are not part of the feature extractor. With a ``prefix`` (a checkpoint of
        a whole otxlike model, keys ``backbone.body...``) mmengine's own ``PretrainedInit`` runs.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained" and not cfg.get("prefix"):
            from mmengine.runner.checkpoint import load_checkpoint

            load_checkpoint(self.body, cfg["checkpoint"], map_location="cpu", strict=False, logger="current")
            self._is_init = True
            return
        super().init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the stage feature maps of ``x`` (N, 3, H, W), in increasing stride."""
        return tuple(out.permute(0, 3, 1, 2) if last else out
                     for out, last in zip(self.body(x).values(), self.channels_last))
