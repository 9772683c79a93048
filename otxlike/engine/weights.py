"""Pretrained weights of a run: found before training, loaded by mmengine, never dropped silently.

Templates start their backbone from the weights its library publishes, through mmengine's own
``init_cfg=dict(type='Pretrained', checkpoint=...)`` (``mmengine/model/weight_init.py``,
``PretrainedInit``) and ``CheckpointLoader`` schemes (``mmengine/runner/checkpoint.py``):
``torchvision://NAME``, ``open-mmlab://NAME``, ``http(s)://...`` or a local file, plus
``timm://NAME`` (registered by :mod:`otxlike.models.timm_backbone`). Remote files are fetched by
``torch.hub.load_state_dict_from_url`` into ``<torch hub dir>/checkpoints/``; timm's from the
Hugging Face hub into its cache.

Before a run is built, :func:`preflight` loads every ``Pretrained`` checkpoint of the model once
with that same loader (so the file lands in the cache and the Runner's own load is a cache hit).
One that cannot be had (no network, a missing file) is either dropped with a
:class:`WeightsStatus` that the CLI prints as one warning line (``weights='auto'``) or refused
(``weights='required'``); ``weights='none'`` drops them all on purpose.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from otxlike.errors import OtxlikeError, one_line

MODES = ("auto", "none", "required")


@dataclass(frozen=True)
class WeightsStatus:
    """What became of one ``Pretrained`` checkpoint of the model.

    Attributes:
        where: Dotted path of the module it initialises, e.g. ``model.backbone``.
        checkpoint: As written in the config, e.g. ``torchvision://resnet18``.
        url: The http(s) URL it resolves to, or None for a local file.
        cache: The local file it is read from (the hub cache for a URL).
        loaded: True if the run starts from it.
        reason: Why not, in one line (None when loaded or dropped by ``weights='none'``).
        fetch: How to make it load on a machine without network (:func:`fetch_hint`).
    """

    where: str
    checkpoint: str
    url: str | None
    cache: Path
    loaded: bool
    reason: str | None = None
    fetch: str = ""

    def to_json(self) -> dict:
        return {"module": self.where, "checkpoint": self.checkpoint, "url": self.url, "cache": str(self.cache),
                "loaded": self.loaded, "reason": self.reason, "fetch": self.fetch}


def resolve(checkpoint: str) -> tuple[str | None, Path]:
    """The URL and the local file of a checkpoint name, as mmengine's loaders resolve them.

    ``torchvision://NAME`` maps through ``get_torchvision_models()``, ``open-mmlab://NAME``
    through ``get_external_models()`` (``mmengine/runner/checkpoint.py``); a URL is cached by
    ``torch.hub.load_state_dict_from_url`` as ``<torch.hub.get_dir()>/checkpoints/<file name>``.

    ``timm://NAME`` gives the Hugging Face repository page and its cache folder (or timm's URL and
    the torch hub cache file for the models timm publishes by URL).

    Raises:
        OtxlikeError: If a ``torchvision://``, ``open-mmlab://`` or ``timm://`` name is unknown.
    """
    import torch
    from mmengine.runner.checkpoint import get_deprecated_model_names, get_external_models, get_torchvision_models

    if checkpoint.startswith("timm://"):
        url, cache, _ = _timm_source(checkpoint)
        return url, cache
    url = checkpoint
    for prefix, table in (("torchvision://", get_torchvision_models), ("open-mmlab://", get_external_models),
                          ("openmmlab://", get_external_models)):
        if checkpoint.startswith(prefix):
            name = checkpoint[len(prefix):]
            if prefix != "torchvision://":
                name = get_deprecated_model_names().get(name, name)
            urls = table()
            if name not in urls:
                raise OtxlikeError(f"mmengine knows no checkpoint '{checkpoint}'",
                                   "give a URL or a local .pth file instead")
            url = urls[name]
    if not url.startswith(("http://", "https://")):
        return None, Path(os.path.expanduser(url))
    return url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _timm_source(checkpoint: str) -> tuple[str, Path, str]:
    """:func:`otxlike.models.timm_backbone.timm_source` of a ``timm://`` name.

    Raises:
        OtxlikeError: If timm publishes no weights under the name.
    """
    from otxlike.models.timm_backbone import SCHEME, timm_source

    try:
        return timm_source(checkpoint[len(SCHEME):])
    except FileNotFoundError as exc:
        raise OtxlikeError(f"{exc} ('{checkpoint}')", "see timm.list_pretrained() for the names") from exc


def fetch_hint(checkpoint: str, url: str | None, cache: Path) -> str:
    """How to make ``checkpoint`` load without network, in one clause: the file to put where the
    loader reads it (and where to get it)."""
    if checkpoint.startswith("timm://"):
        return _timm_source(checkpoint)[2]
    return f"put the file at {cache}" + (f" (from {url})" if url else "")


def _pretrained(node, path: str):
    """``(path, owner, position)`` of every ``Pretrained`` init_cfg under a model config node:
    ``owner["init_cfg"]`` is it (``position`` None) or holds it at ``position`` (a list)."""
    if isinstance(node, dict):
        init = node.get("init_cfg")
        for i, cfg in enumerate(init if isinstance(init, list) else [init]):
            if isinstance(cfg, dict) and cfg.get("type") == "Pretrained" and cfg.get("checkpoint"):
                yield path, node, i if isinstance(init, list) else None
        for key, value in node.items():
            if key != "init_cfg":
                yield from _pretrained(value, f"{path}.{key}")


@contextlib.contextmanager
def _quiet():
    """Keep torch.hub's download lines and mmengine's "Loads checkpoint by ..." log off the console
    while otxlike checks a checkpoint (the run's own load logs them to its log file)."""
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def _load(checkpoint: str):
    """The checkpoint as mmengine's ``CheckpointLoader`` reads it (downloading it into the cache if
    need be), quietly and under otxlike's weights-only allow-list."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from otxlike.engine.checkpoints import checkpoint_loading

    if checkpoint.startswith("timm://"):
        import otxlike.models.timm_backbone  # noqa: F401  registers the timm:// scheme
    with _quiet(), checkpoint_loading():
        return CheckpointLoader.load_checkpoint(checkpoint, map_location="cpu")


def _try_load(checkpoint: str) -> str | None:
    """None if ``checkpoint`` loads (:func:`_load`), else the reason in one line."""
    try:
        _load(checkpoint)
    except OtxlikeError as exc:
        return str(exc)
    except Exception as exc:  # URLError (no network), FileNotFoundError, a corrupt file, ...
        return one_line(f"{type(exc).__name__}: {exc}", 300)
    return None


def preflight(model: dict, mode: str = "auto") -> list[WeightsStatus]:
    """Make sure every ``Pretrained`` checkpoint of ``model`` can be loaded, or drop it.

    Args:
        model: The run config's ``model`` (an mmengine ``ConfigDict``), changed in place: a
            checkpoint that is not loaded has its ``init_cfg`` removed.
        mode: ``auto`` (drop unreachable ones; the statuses say so), ``none`` (drop them all),
            ``required`` (raise instead of dropping).

    Returns:
        One :class:`WeightsStatus` per checkpoint.

    Raises:
        OtxlikeError: An unknown mode; with ``required``, a checkpoint that cannot be loaded
            (the message names the URL and the cache file to put it in).
    """
    if mode not in MODES:
        raise OtxlikeError(f"unknown --weights '{mode}'", f"choose one of: {', '.join(MODES)}")
    statuses, dropped = [], []
    for where, owner, position in list(_pretrained(model, "model")):
        init = owner["init_cfg"]
        checkpoint = (init if position is None else init[position])["checkpoint"]
        url, cache = resolve(checkpoint)
        reason = None if mode == "none" else _try_load(checkpoint)
        loaded = mode != "none" and reason is None
        if not loaded:
            if mode == "required":
                raise OtxlikeError(f"cannot load the weights {checkpoint} of {where} ({reason})",
                                   fetch_hint(checkpoint, url, cache))
            dropped.append((owner, position))
        statuses.append(WeightsStatus(where, checkpoint, url, cache, loaded, reason,
                                      "" if loaded else fetch_hint(checkpoint, url, cache)))
    for owner, position in reversed(dropped):  # the module keeps its own initialisation
        if position is None:
            owner["init_cfg"] = None
        else:
            owner["init_cfg"] = [cfg for i, cfg in enumerate(owner["init_cfg"]) if i != position]
    return statuses


def explicit(checkpoint: str, module=None) -> dict:
    """The ``init_cfg`` for a checkpoint the user names (``--weights PATH|URL``), after loading it.

    A checkpoint of a whole otxlike model (``otxlike train`` output: keys ``backbone.*``) gets
    ``prefix='backbone'``, so mmengine's ``PretrainedInit`` takes its backbone part: a backbone
    trained on one task can start another.

    Args:
        checkpoint: Path, URL or mmengine name (``torchvision://resnet18``).
        module: The built backbone (an ``nn.Module``); if given, the checkpoint must hold at least
            one of its tensors under the same name and shape (mmengine loads non-strictly and would
            only warn).

    Returns:
        ``dict(type='Pretrained', checkpoint=..., [prefix='backbone'])``.

    Raises:
        OtxlikeError: If it cannot be loaded (the message names the URL and the cache file), or
            holds none of ``module``'s tensors.
    """
    url, cache = resolve(checkpoint)
    try:
        state = _load(checkpoint)
    except OtxlikeError:
        raise
    except Exception as exc:
        raise OtxlikeError(f"cannot load the weights {checkpoint} ({one_line(f'{type(exc).__name__}: {exc}', 300)})",
                           fetch_hint(checkpoint, url, cache)) from exc
    tensors = state.get("state_dict", state) if isinstance(state, dict) else {}
    init = {"type": "Pretrained", "checkpoint": checkpoint}
    if any(str(k).startswith("backbone.") for k in tensors):
        init["prefix"] = "backbone"
        tensors = {k[len("backbone."):]: v for k, v in tensors.items() if str(k).startswith("backbone.")}
    if module is not None:
        if "prefix" in init:
            own = module.state_dict()
        elif hasattr(module, "checkpoint_state_dict"):  # TimmBackbone: names of the whole timm model
            own = module.checkpoint_state_dict()
        else:  # TorchvisionBackbone loads into its body
            own = getattr(module, "body", module).state_dict()
        own = {k: v for k, v in own.items() if v.dim() > 0}  # not BN's num_batches_tracked
        matched = sum(1 for k, v in own.items() if k in tensors and getattr(tensors[k], "shape", None) == v.shape)
        if not matched:
            example = next(iter(tensors), "none")
            raise OtxlikeError(f"the weights {checkpoint} hold none of the backbone's {len(own)} tensors "
                               f"(checkpoint keys look like '{example}')", "give weights of this backbone")
    return init
