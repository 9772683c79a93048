"""timm models as multi-scale backbones for mmengine configs.

``TimmBackbone`` is registered as ``otxlike.TimmBackbone``. It builds
``timm.create_model(model_name, features_only=True)``, timm's own feature-extraction mode (see
``timm/models/_features.py``), whose ``feature_info`` gives each level's channels and stride.

Published weights are named ``timm://<model>.<tag>`` (``timm://resnet18.a1_in1k``): a scheme of
mmengine's ``CheckpointLoader`` registered here, which reads them with timm's own hub functions
(``timm/models/_hub.py``: the Hugging Face hub cache, or the torch hub cache for the few models
published by URL), so ``init_cfg=dict(type='Pretrained', checkpoint='timm://...')`` works like
``torchvision://`` and ``open-mmlab://`` names.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader

from otxlike.errors import OtxlikeError
from otxlike.registry import MODELS


def default_out_indices(model_name: str, **kwargs) -> tuple[int, ...]:
    """The feature levels timm's ``features_only`` mode returns for ``model_name`` when given no
    ``out_indices``: the model's own ``feature_cfg`` (``(0, 1, 2, 3, 4)`` for most CNNs,
    ``(1, 2, 3, 4, 5)`` for DLA, the last three blocks for ViTs; ``timm/models/_builder.py``),
    read from ``feature_info.out_indices`` of a build on the meta device (no memory, no weights),
    or on the CPU for a model whose constructor needs real tensors.

    Args:
        model_name: A name from ``timm.list_models()``.
        **kwargs: Other ``timm.create_model`` arguments (e.g. ``img_size``).

    Raises:
        Exception: timm's own, if the model does not build with these arguments.
    """
    import timm

    kwargs = {k: v for k, v in kwargs.items() if k != "out_indices"}
    try:
        with torch.device("meta"):
            body = timm.create_model(model_name, features_only=True, **kwargs)
    except Exception:  # e.g. a drop-path schedule read with .item() while building
        body = timm.create_model(model_name, features_only=True, **kwargs)
    return tuple(int(i) for i in body.feature_info.out_indices)


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """A timm model returning its feature levels.

    Args:
        model_name: A name from ``timm.list_models()``, e.g. ``resnet18``.
        pretrained: Let timm load its published weights while building (fails offline with an
            :class:`OtxlikeError`). otxlike writes ``init_cfg`` instead (below), which is checked
            before a run and loaded by mmengine when the run initialises the model.
        out_indices: Which feature levels to return (indices into the model's
            ``feature_info``, stride 2 first for most CNNs); all levels when None.
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained',
            checkpoint='timm://resnet18.a1_in1k')`` (see :meth:`init_weights`); None keeps timm's
            own initialisation.
        **kwargs: Passed to ``timm.create_model`` (e.g. ``img_size`` for ViTs, ``drop_path_rate``).

    Attributes:
        out_channels: C_i of each returned level, from timm's ``feature_info.channels()``.
        strides: s_i of each returned level in pixels, from ``feature_info.reduction()``
            (declared by timm, no forward pass).

    Shapes:
        ``forward(x)``: x is (N, 3, H, W); returns a tuple with one (N, C_i, H / s_i, W / s_i)
        tensor per selected level, in increasing stride ``s_i``.

    Raises:
        OtxlikeError: If the name is unknown, the model has no ``features_only`` mode, or the
            weights cannot be loaded.
    """

    def __init__(self, model_name: str, pretrained: bool = False, out_indices=None, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        if not timm.is_model(model_name):
            raise OtxlikeError(f"timm has no model '{model_name}'", "see 'otxlike find --backbone timm'")
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        try:
            self.body = timm.create_model(model_name, pretrained=pretrained, features_only=True, **kwargs)
        except (OSError, ValueError) as exc:  # no network: huggingface_hub raises OSError subclasses
            if pretrained:
                raise OtxlikeError(f"could not get timm weights for {model_name} ({exc})",
                                   "set pretrained: false, or give checkpoint_path: a local file") from exc
            raise
        self.model_name = model_name
        self._create_kwargs = kwargs
        self.out_channels = tuple(int(c) for c in self.body.feature_info.channels())
        self.strides = tuple(int(r) for r in self.body.feature_info.reduction())

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=...)`` into the wrapped network.

        The checkpoint (``timm://NAME``, a path or a URL) is read with mmengine's
        ``CheckpointLoader``; its keys are those of the whole timm model (``stages.0...``), which
        ``features_only`` renames and prunes, so timm itself maps them: the model is created
        once more with ``pretrained_cfg_overlay=dict(state_dict=...)`` (timm's ``load_pretrained``,
        strict, ``timm/models/_builder.py``) and its tensors copied into ``self.body``. With a
        ``prefix`` (a checkpoint of a whole otxlike model, keys ``backbone.body...``) mmengine's own
        ``PretrainedInit`` runs.

        Raises:
            RuntimeError: From timm, if the checkpoint does not hold this model's tensors.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained" and not cfg.get("prefix"):
            self.body.load_state_dict(self.pretrained_body(cfg["checkpoint"]).state_dict())
            self._is_init = True
            return
        super().init_weights()

    def pretrained_body(self, checkpoint: str) -> torch.nn.Module:
        """The feature network of this backbone with the weights of ``checkpoint`` (see
        :meth:`init_weights`), built by timm.

        Raises:
            RuntimeError: From timm's strict load, if the tensors do not fit the model.
        """
        import timm

        state = CheckpointLoader.load_checkpoint(checkpoint, map_location="cpu")
        if isinstance(state, dict):
            state = state.get("state_dict", state.get("model", state))
        kwargs = dict(self._create_kwargs)
        return timm.create_model(self.model_name, pretrained=True, features_only=True,
                                 pretrained_cfg_overlay=dict(state_dict=state), **kwargs)

    def checkpoint_state_dict(self) -> dict:
        """The state dict of the whole timm model this backbone is cut from (random weights): the
        names and shapes a timm checkpoint of it holds (``features_only`` renames some)."""
        import timm

        kwargs = {k: v for k, v in self._create_kwargs.items() if k != "out_indices"}
        return timm.create_model(self.model_name, **kwargs).state_dict()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the feature maps of ``x`` (N, 3, H, W), in increasing stride, as (N, C, H, W)
        (timm's Swin-style models give (N, H, W, C): their ``output_fmt`` says so)."""
        outs = self.body(x)
        if getattr(self.body, "output_fmt", "NCHW") == "NHWC":
            return tuple(o.permute(0, 3, 1, 2) for o in outs)
        return tuple(outs)


SCHEME = "timm://"


def timm_source(name: str) -> tuple[str, Path, str]:
    """Where timm publishes the weights ``name`` (``resnet18.a1_in1k``; the default tag without
    one), as ``(url, cache, fetch)``: the page or file to get, the local folder or file timm reads
    them from, and how to put them there on a machine without network.

    Raises:
        FileNotFoundError: If timm publishes no weights under that name.
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import constants

        repo = cfg.hf_hub_id.split("@")[0]
        cache = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
        return (f"https://huggingface.co/{repo}", cache,
                f"run 'hf download {repo}' on a machine with network and copy that folder to {cache} "
                "(or give --weights PATH)")
    if cfg is not None and cfg.url:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url.split("?")[0])
        return cfg.url, cache, f"put the file at {cache} (from {cfg.url})"
    raise FileNotFoundError(f"timm publishes no weights for '{name}'")


@CheckpointLoader.register_scheme(prefixes=SCHEME)
def load_from_timm(filename: str, map_location=None) -> dict:
    """mmengine checkpoint scheme ``timm://NAME``: the state dict timm publishes for ``NAME``
    (keys of the whole model), read by ``timm.models.load_state_dict_from_hf`` (weights only;
    safetensors when published) or ``torch.hub.load_state_dict_from_url``.

    Offline, a file not in the cache fails after one quick request instead of timm's retries.

    Raises:
        FileNotFoundError: If timm publishes no weights under the name.
        OSError: If the file is neither cached nor downloadable (huggingface_hub's errors).
    """
    import timm

    name = filename[len(SCHEME):]
    timm_source(name)  # FileNotFoundError if there are none
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg.hf_hub_id:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.errors import EntryNotFoundError

        repo = cfg.hf_hub_id
        files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        cached = any(isinstance(huggingface_hub.try_to_load_from_cache(repo, f), str) for f in files)
        if not cached and not constants.HF_HUB_OFFLINE:
            try:  # one request without retries: fails at once without network
                huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, files[0]))
            except EntryNotFoundError:
                pass  # the hub answered; timm tries its other file name
        if cfg.hf_hub_filename:
            return timm.models.load_state_dict_from_hf(repo, cfg.hf_hub_filename, weights_only=True)
        return timm.models.load_state_dict_from_hf(repo, weights_only=True)
    return torch.hub.load_state_dict_from_url(cfg.url, map_location=map_location or "cpu", weights_only=True)
