"""Hyper-parameters of one training run: ``otxlike train --lr --batch-size --optimizer ...``.

:class:`HParams` holds the overrides a user gives for one run (None keeps model.py's value).
:meth:`HParams.check` refuses bad values before anything is imported or built; :func:`apply`
writes the overrides into the run's mmengine ``Config`` with mmengine's own pieces (optimizers of
the ``OPTIMIZERS`` registry, ``CosineAnnealingLR`` / ``MultiStepLR`` / ``ReduceOnPlateauLR`` /
``LinearLR`` warm-up, ``CheckpointHook(save_best=...)``, ``EarlyStoppingHook``, ``--cfg-options``
parsed by mmengine's ``DictAction``), and :func:`effective` reads back what the run will use,
for ``hparams.yaml``.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import asdict, dataclass, field

from otxlike.errors import OtxlikeError
from otxlike.tasks import TaskSpec

SCHEDULERS = ("cosine", "step", "plateau", "none")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
WEIGHTS = ("auto", "none", "required")  # otxlike.engine.weights.MODES
#: Multi-step decay points as fractions of the run: mmdet's 1x schedule decays at epochs 8 and 11 of
#: 12 (``mmdet/configs/_base_/schedules/schedule_1x.py``).
STEP_MILESTONES = (8 / 12, 11 / 12)
#: ``EarlyStoppingHook``'s smallest improvement, as a fraction of a perfect score (mmengine's
#: default min_delta=0.1 is 0.1 % of an accuracy in percent but 10 % of a COCO mAP in [0, 1]).
MIN_DELTA_FRACTION = 1e-3
WARMUP_START_FACTOR = 1e-3  # LinearLR warm-up from lr / 1000, as mmdet's schedules do


@dataclass(frozen=True)
class HParams:
    """Overrides of model.py's training settings for one run; None keeps model.py's value.

    Attributes:
        epochs: ``train_cfg.max_epochs`` (>= 1), scheduler bounds that equal it follow.
        lr: Base learning rate of the optimizer (> 0).
        batch_size: Images per training batch (>= 1).
        optimizer: A type of mmengine's ``OPTIMIZERS`` registry (torch's optimizers included),
            e.g. ``AdamW``; model.py's optimizer arguments that it takes are kept.
        scheduler: ``cosine`` (CosineAnnealingLR to the end), ``step`` (x0.1 at 8/12 and 11/12
            of the run), ``plateau`` (ReduceOnPlateauLR on the eval key) or ``none`` (constant);
            all but ``none`` need an epoch-based loop, as ``epochs`` does.
        warmup: Iterations of linear warm-up from lr / 1000 (0 removes model.py's warm-up).
        eval_interval: Epochs between validations (>= 1).
        eval_key: The metric that picks the best checkpoint and that ``plateau`` and early
            stopping watch, e.g. ``coco/bbox_mAP``; default: the task's main metric.
        early_stop: Stop after this many validations without improvement (>= 1).
        precision: ``fp32``, ``bf16`` (autocast; on the CPU too) or ``fp16`` (CUDA AMP only).
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: ``randomness.seed``.
        cfg_options: mmengine ``KEY=VALUE`` overrides of any config key, applied last.
        weights: What to do with the model's pretrained checkpoints (``init_cfg`` of type
            ``Pretrained``): ``auto`` (load them; one that cannot be had is dropped with a
            warning), ``none`` (train from random weights), ``required`` (fail without them).
            See :mod:`otxlike.engine.weights`.
        skip_bad_images: Leave images that are missing or do not decode (and their annotations)
            out of the run, with a warning and a count, instead of refusing the data.
    """

    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    scheduler: str | None = None
    warmup: int | None = None
    eval_interval: int | None = None
    eval_key: str | None = None
    early_stop: int | None = None
    precision: str = "fp32"
    device: str = "auto"
    seed: int | None = None
    cfg_options: tuple[str, ...] = field(default_factory=tuple)
    weights: str = "auto"
    skip_bad_images: bool = False

    def to_json(self) -> dict:
        """The overrides as plain YAML / JSON values (``overrides:`` of hparams.yaml, a worker's job
        file); :meth:`from_json` reads them back."""
        return {**asdict(self), "cfg_options": list(self.cfg_options)}

    @classmethod
    def from_json(cls, doc: dict) -> "HParams":
        """The overrides :meth:`to_json` wrote."""
        return cls(**{**doc, "cfg_options": tuple(doc.get("cfg_options") or ())})

    def check(self) -> None:
        """Refuse out-of-range numbers and unknown names, before anything is built.

        Raises:
            OtxlikeError: One line naming the flag, the bad value and the valid ones.
        """
        for flag, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--warmup", self.warmup, 0), ("--eval-interval", self.eval_interval, 1),
                                 ("--early-stop", self.early_stop, 1)):
            if value is not None and value < low:
                raise OtxlikeError(f"{flag} must be at least {low}, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise OtxlikeError(f"--lr must be a positive number, got {self.lr}")
        for flag, value, choices in (("--scheduler", self.scheduler, SCHEDULERS), ("--weights", self.weights, WEIGHTS),
                                     ("--precision", self.precision, PRECISIONS), ("--device", self.device, DEVICES)):
            if value is not None and value not in choices:
                raise OtxlikeError(f"unknown {flag} '{value}'", f"choose one of: {', '.join(choices)}")
        for option in self.cfg_options:
            key, sep, _ = option.partition("=")
            if not sep or not key:
                raise OtxlikeError(f"--cfg-options takes KEY=VALUE, got '{option}'",
                                   "e.g. --cfg-options optim_wrapper.optimizer.weight_decay=0.0001")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_device(hp: HParams) -> str:
    """The device the run trains on (``cuda`` or ``cpu``), checked against the machine.

    Raises:
        OtxlikeError: ``--device cuda`` without a CUDA device, ``--device cpu`` in a process that
            already sees one, or ``--precision fp16`` where the run is on the CPU (PyTorch
            autocasts the CPU to bfloat16 only).
    """
    cuda = _cuda_available()
    if hp.device == "cuda" and not cuda:
        raise OtxlikeError("--device cuda: torch sees no CUDA device here", "use --device cpu or auto")
    if hp.device == "cpu" and cuda:  # mmengine's Runner moves the model to get_device()
        raise OtxlikeError("--device cpu: torch already sees a CUDA device in this process",
                           "set CUDA_VISIBLE_DEVICES= before starting (the otxlike command does)")
    device = "cuda" if cuda and hp.device != "cpu" else "cpu"
    if hp.precision == "fp16" and device == "cpu":
        raise OtxlikeError("--precision fp16 needs a CUDA device; this run is on the CPU",
                           "use --precision bf16 (CPU autocast) or fp32")
    return device


def _check_eval_key(key: str, task: TaskSpec, evaluator) -> None:
    """Refuse a key the task's evaluator never reports (mmengine would silently ignore it).

    A workspace whose val_evaluator is not the template's kind (a custom metric) may report any
    key, so only the standard evaluators are checked.
    """
    standard = {"Accuracy", "CocoMetric", "IoUMetric", "AveragePrecision", "MultiLabelMetric"}
    types = {e.get("type") for e in (evaluator if isinstance(evaluator, list) else [evaluator]) if e}
    if types <= standard and key not in task.metrics:
        close = difflib.get_close_matches(key, task.metrics, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise OtxlikeError(f"--eval-key '{key}' is not a metric of {task.name}",
                           f"{hint}its keys: {', '.join(task.metrics)}")


def _optimizer_class(name: str, scope: str):
    """The optimizer class ``name`` in mmengine's OPTIMIZERS (seen from ``scope``).

    Raises:
        OtxlikeError: If there is none (with the closest registered names).
    """
    import mmengine.optim  # noqa: F401  (registers torch's optimizers: mmengine/optim/optimizer/builder.py)
    from mmengine.registry import OPTIMIZERS, DefaultScope

    with DefaultScope.overwrite_default_scope(scope):
        cls = OPTIMIZERS.get(name)
    if cls is not None:
        return cls
    known = sorted(OPTIMIZERS.module_dict)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise OtxlikeError(f"unknown --optimizer '{name}'", f"{hint}optimizers: {', '.join(known)}")


def _by_epoch(cfg) -> bool:
    loop = cfg.train_cfg
    return loop.get("by_epoch", True) and loop.get("type", "EpochBasedTrainLoop") != "IterBasedTrainLoop"


def set_epochs(cfg, epochs: int) -> None:
    """Override ``max_epochs``, and scheduler bounds that were equal to it (``end``, ``T_max``)."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    for sched in cfg.get("param_scheduler") or []:
        for key in ("end", "T_max"):
            if sched.get(key) == old:
                sched[key] = epochs


def _is_warmup(sched: dict) -> bool:
    return sched.get("type") == "LinearLR" and not sched.get("by_epoch", True)


def _schedulers(name: str, max_epochs: int, eval_key: str) -> list[dict]:
    if name == "cosine":
        return [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
                     convert_to_iter_based=True)]
    if name == "step":
        # a milestone at max_epochs would fall after the last epoch
        milestones = sorted({min(max(1, round(f * max_epochs)), max(1, max_epochs - 1)) for f in STEP_MILESTONES})
        return [dict(type="MultiStepLR", by_epoch=True, begin=0, end=max_epochs, milestones=milestones, gamma=0.1)]
    if name == "plateau":
        return [dict(type="ReduceOnPlateauLR", monitor=eval_key, rule="greater", factor=0.1, patience=2,
                     by_epoch=True)]
    return []


def apply(cfg, hp: HParams, task: TaskSpec, scope: str) -> str:
    """Write ``hp`` into the run config ``cfg`` (an mmengine ``Config``), in place.

    Args:
        cfg: The merged workspace config of the run.
        hp: The overrides (checked with :meth:`HParams.check` first).
        task: The workspace's task (its metric keys and their scale).
        scope: The config's default scope (for optimizer lookup).

    Returns:
        The device the run trains on (:func:`check_device`).

    Raises:
        OtxlikeError: An unknown optimizer or eval key, ``--epochs`` or a scheduler on an
            iteration-based loop,
            an unavailable device or precision, or a ``--cfg-options`` key that cannot be set.
    """
    hp.check()
    device = check_device(hp)
    eval_key = hp.eval_key or _saved_best(cfg) or task.metric
    if hp.eval_key is not None:
        _check_eval_key(hp.eval_key, task, cfg.get("val_evaluator"))
    if (hp.epochs is not None or hp.scheduler not in (None, "none")) and not _by_epoch(cfg):
        flag = "--epochs" if hp.epochs is not None else f"--scheduler {hp.scheduler}"
        raise OtxlikeError(f"{flag} needs an epoch-based training loop; model.py trains by iterations",
                           "set train_cfg.max_iters and param_scheduler in model.py (or with --cfg-options)")
    if hp.epochs is not None:
        set_epochs(cfg, hp.epochs)
    if hp.optimizer is not None:
        cls = _optimizer_class(hp.optimizer, scope)
        takes = inspect.signature(cls.__init__).parameters
        kept = {k: v for k, v in cfg.optim_wrapper.optimizer.items() if k != "type" and k in takes}
        cfg.optim_wrapper.optimizer = dict(type=hp.optimizer, **kept)
    if hp.lr is not None:
        cfg.optim_wrapper.optimizer.lr = hp.lr
    if hp.batch_size is not None:
        cfg.train_dataloader.batch_size = hp.batch_size
    schedulers = list(cfg.get("param_scheduler") or [])
    if hp.scheduler is not None:
        schedulers = [s for s in schedulers if _is_warmup(s)] + _schedulers(hp.scheduler, cfg.train_cfg.max_epochs,
                                                                              eval_key)
    if hp.warmup is not None:
        schedulers = [s for s in schedulers if not _is_warmup(s)]
        if hp.warmup:
            schedulers.insert(0, dict(type="LinearLR", start_factor=WARMUP_START_FACTOR, by_epoch=False,
                                      begin=0, end=hp.warmup))
    cfg.param_scheduler = schedulers
    if hp.eval_interval is not None:
        cfg.train_cfg.val_interval = hp.eval_interval
    if hp.eval_key is not None:
        hooks = cfg.get("default_hooks") or {}
        hooks["checkpoint"] = {**(hooks.get("checkpoint") or {"type": "CheckpointHook", "interval": 1}),
                               "save_best": hp.eval_key, "rule": "greater"}
        cfg.default_hooks = hooks
    if hp.early_stop is not None:
        cfg.custom_hooks = [*(cfg.get("custom_hooks") or []),
                            dict(type="EarlyStoppingHook", monitor=eval_key, rule="greater", patience=hp.early_stop,
                                 min_delta=MIN_DELTA_FRACTION * task.metric_scale, strict=True)]
    if hp.precision == "bf16":
        wrapper = cfg.optim_wrapper.to_dict()
        if device == "cuda":
            wrapper.update(type="AmpOptimWrapper", dtype="bfloat16")
        else:
            wrapper.update(type="otxlike.CPUBF16OptimWrapper")
        cfg.optim_wrapper = wrapper
    elif hp.precision == "fp16":
        cfg.optim_wrapper = {**cfg.optim_wrapper.to_dict(), "type": "AmpOptimWrapper", "loss_scale": "dynamic"}
    if hp.seed is not None:
        cfg.randomness = dict(seed=hp.seed)
    if hp.cfg_options:
        _merge_options(cfg, hp.cfg_options)
    return device


#: The model.py key holding the settings of a start from random weights (see :func:`apply_start`).
FROM_SCRATCH_KEY = "from_scratch"
CLASS_DEFAULT = "default"
"""A ``from_scratch`` value that removes the key, so the module's class default applies."""


def _touched(hp: HParams) -> tuple[str, ...]:
    """Dotted config keys the run's flags and ``--cfg-options`` set."""
    keys = [key for value, key in ((hp.epochs, "train_cfg.max_epochs"), (hp.lr, "optim_wrapper.optimizer.lr"),
                                   (hp.optimizer, "optim_wrapper.optimizer"),
                                   (hp.batch_size, "train_dataloader.batch_size"),
                                   (hp.scheduler, "param_scheduler"), (hp.warmup, "param_scheduler"),
                                   (hp.eval_interval, "train_cfg.val_interval")) if value is not None]
    return (*keys, *(option.partition("=")[0] for option in hp.cfg_options))


def config_value(cfg, dotted: str):
    """The value at a dotted key of an mmengine ``Config`` or a dict (list items by index), with
    dicts and lists as plain ones (a ``ConfigDict`` becomes a dict).

    Raises:
        KeyError: The key is not there.
    """
    return _plain(_node(cfg, dotted))


def _node(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(dotted)
            node = node[int(part)]
            continue
        try:
            node = node[part]  # a Config, a dict
        except (KeyError, TypeError, AttributeError):
            raise KeyError(dotted) from None
    return node


def _plain(node):
    if isinstance(node, dict):  # a ConfigDict is a dict
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_plain(value) for value in node)
    return node


def _has_key(cfg, dotted: str) -> bool:
    try:
        _node(cfg, dotted)
    except KeyError:
        return False
    return True


def apply_start(cfg, hp: HParams, weights) -> dict:
    """Switch the settings that depend on where the backbone starts from, after the weights check.

    model.py holds the settings for a start from pretrained weights (the libraries' conventions,
    e.g. mmdet's ``frozen_stages=1``) and, under ``from_scratch``, the dotted keys that change
    when ``model.backbone`` starts from random weights (``--weights none``, no published weights,
    or weights that could not be had), as mmdet's ``configs/scratch`` do (``frozen_stages=-1``).
    A key is applied only where the config has it (a swapped backbone may not take the argument)
    and the run's flags or ``--cfg-options`` do not set it, or a key above or below it. The value
    ``'default'`` (:data:`CLASS_DEFAULT`) removes the key instead, so the class's own default
    applies. The templates unfreeze the backbone that way,
    ``{'model.backbone.frozen_stages': 'default'}``: "nothing frozen" is ``-1`` in mmdet's
    ``ResNet`` but ``0`` in mmpretrain's ``EfficientNet``, which refuses ``-1``
    (``mmpretrain/models/backbones/efficientnet.py``).

    Args:
        cfg: The run config, after :func:`apply`; changed in place.
        hp: The run's overrides.
        weights: The :class:`~otxlike.engine.weights.WeightsStatus` list of the run.

    Returns:
        ``{"backbone": "pretrained" | "from scratch", "from_scratch": {key: value}}``: the start
        and the keys applied (empty for a pretrained start).

    Raises:
        OtxlikeError: If ``from_scratch`` is not a mapping of dotted keys to values.
    """
    table = cfg.get(FROM_SCRATCH_KEY) or {}
    if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
        raise OtxlikeError(f"model.py: {FROM_SCRATCH_KEY} must be a dict of dotted config keys to values, "
                           f"got {table!r}", "e.g. from_scratch = {'model.backbone.norm_eval': False}")
    pretrained = any(w.loaded and w.where == "model.backbone" for w in weights)
    if pretrained:
        return {"backbone": "pretrained", "from_scratch": {}}
    touched = _touched(hp)
    applied = {key: value for key, value in table.items() if _has_key(cfg, key)
               and not any(key == t or key.startswith(t + ".") or t.startswith(key + ".") for t in touched)}
    removed = [key for key, value in applied.items() if isinstance(value, str) and value == CLASS_DEFAULT]
    for key in removed:
        parent, _, name = key.rpartition(".")
        node = _node(cfg, parent) if parent else cfg  # a Config or dict (list items cannot be removed)
        if isinstance(node, (list, tuple)):
            raise OtxlikeError(f"model.py: from_scratch[{key!r}] = {CLASS_DEFAULT!r} names a list item",
                               "'default' removes a key of a dict, such as model.backbone.frozen_stages")
        node.pop(name)
    merged = {key: value for key, value in applied.items() if key not in removed}
    if merged:
        cfg.merge_from_dict(merged, allow_list_keys=True)
    return {"backbone": "from scratch", "from_scratch": applied}


def _saved_best(cfg) -> str | None:
    """model.py's own ``save_best`` key, unless it is mmengine's ``'auto'`` (the first metric)."""
    key = (cfg.get("default_hooks") or {}).get("checkpoint", {}).get("save_best")
    return key if isinstance(key, str) and key != "auto" else None


def _merge_options(cfg, options: tuple[str, ...]) -> None:
    """``--cfg-options KEY=VALUE ...`` parsed as mmengine's ``DictAction`` does (numbers, bools,
    None, lists and tuples) and merged with ``Config.merge_from_dict``."""
    from mmengine.config import DictAction

    parsed = {}
    for option in options:
        key, _, value = option.partition("=")
        parsed[key] = DictAction._parse_iterable(value)
    try:
        cfg.merge_from_dict(parsed)
    except Exception as exc:
        raise OtxlikeError(f"--cfg-options could not be applied: {type(exc).__name__}: {exc}",
                           "give dotted keys of model.py / data_pipeline.py") from exc


def effective(cfg, hp: HParams, device: str, weights=()) -> dict:
    """What the run uses, read back from the final config (for ``hparams.yaml`` and the first line
    of ``otxlike train``); ``weights`` are the :class:`~otxlike.engine.weights.WeightsStatus`
    of its pretrained checkpoints."""
    optimizer = cfg.optim_wrapper.optimizer
    checkpoint = (cfg.get("default_hooks") or {}).get("checkpoint", {})
    early = next((h for h in cfg.get("custom_hooks") or [] if h.get("type") == "EarlyStoppingHook"), None)
    return {
        "epochs": cfg.train_cfg.get("max_epochs"),
        "batch_size": cfg.train_dataloader.batch_size,
        "optimizer": optimizer.get("type"),
        "lr": optimizer.get("lr"),
        "schedulers": [s.get("type") for s in cfg.get("param_scheduler") or []],
        "warmup_iters": next((s.get("end") for s in cfg.get("param_scheduler") or [] if _is_warmup(s)), 0),
        "eval_interval": cfg.train_cfg.get("val_interval", 1),
        "eval_key": checkpoint.get("save_best"),
        "early_stop": early.get("patience") if early else None,
        "precision": hp.precision,
        "device": device,
        "seed": (cfg.get("randomness") or {}).get("seed"),
        "cfg_options": list(hp.cfg_options),
        "weights": [w.to_json() for w in weights],
        "skip_bad_images": hp.skip_bad_images,
    }
