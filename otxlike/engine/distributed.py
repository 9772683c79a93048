"""Inside one process of a multi-process run (``otxlike train --nproc / --gpus``): the process
group, what rank 0 decides for all, and the config that makes mmengine's Runner train with DDP.

The processes are started by torchrun (:mod:`otxlike.engine.launch`), which sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; each runs
:mod:`otxlike.engine.worker`, which calls :func:`init_group` and then the same
:func:`otxlike.engine.train.train` as a one-process run. Outside such a process every function
here sees a world of one (rank 0) and changes nothing.

mmengine 0.10.7 (``mmengine/dist/utils.py``, ``mmengine/runner/runner.py``):

* ``Runner.setup_env`` calls ``init_dist`` only when no process group exists yet
  (``if self.distributed and not is_distributed()``); ``_init_dist_pytorch`` calls
  ``torch.cuda.set_device`` even for gloo, so on the CPU the group is initialised here first and
  mmengine reuses it.
* ``Runner.wrap_model`` gives DDP ``device_ids=[LOCAL_RANK]`` unless ``model_wrapper_cfg`` names
  them; a CPU module needs ``device_ids=None`` (``torch/nn/parallel/distributed.py``).
* ``Runner.scale_lr`` applies ``auto_scale_lr=dict(enable=True, base_batch_size=B)``: lr times
  ``world_size * batch_size / B``, the linear scaling rule of Goyal et al. 2017, "Accurate, Large
  Minibatch SGD: Training ImageNet in 1 Hour" (arXiv:1706.02677).
* ``randomness.seed`` (or a seed drawn by rank 0 with ``sync_random_seed``) is the same on every
  rank (``diff_rank_seed=False``), so every rank builds the same model; ``DefaultSampler``
  shuffles with that seed and gives rank ``r`` the indices ``r, r + world_size, ...``, so one
  global step sees the same images as one step of a single process with ``world_size`` times the
  batch.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from otxlike.errors import OtxlikeError

T = TypeVar("T")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_group(device: str) -> None:
    """Initialise the default process group from torchrun's environment, before the Runner.

    Args:
        device: ``cuda`` (NCCL, one GPU per process: ``LOCAL_RANK``) or ``cpu`` (gloo).
    """
    import torch
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")


def from_rank0(make: Callable[[], T]) -> T:
    """``make()`` on rank 0, its (picklable) value sent to every rank; just ``make()`` in a world
    of one. Rank 0 alone touches the disk this way (e.g. creating the run folder)."""
    rank, size = world()
    if size == 1:
        return make()
    import torch.distributed as dist

    box = [make() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def distribute(cfg, device: str, batch_size_key: str = "train_dataloader.batch_size") -> dict:
    """Set up the run config ``cfg`` for DDP in this process group (in place) and say what the
    global batch and learning rate are.

    The per-process batch (model.py's ``train_dataloader.batch_size`` or ``--batch-size``) is
    kept, so the global batch is ``world_size`` times it, and the learning rate given for one
    process is scaled linearly by mmengine's ``auto_scale_lr`` (``base_batch_size`` = the
    per-process batch). A model.py that sets ``auto_scale_lr`` itself keeps its own rule.

    Args:
        cfg: The run config (an mmengine ``Config``), after the run's flags are applied.
        device: ``cpu`` or ``cuda``.

    Returns:
        ``world_size``, ``global_batch`` (images per optimizer step, all processes),
        ``lr_scaled`` (the learning rate the run trains with after mmengine's scaling, which
        applies in a world of one too when model.py enables ``auto_scale_lr``; ``lr`` in
        hparams.yaml stays the one given). A world of one changes nothing in ``cfg``.

    Raises:
        OtxlikeError: model.py enables ``auto_scale_lr`` without ``base_batch_size`` (mmengine
            asserts on it once the run has started).
    """
    rank, size = world()
    batch = cfg.train_dataloader.batch_size
    lr = cfg.optim_wrapper.optimizer.get("lr")
    rule = cfg.get("auto_scale_lr")
    if size == 1:
        return {"world_size": 1, "global_batch": batch, "lr_scaled": _scaled_lr(rule, lr, batch)}
    cfg.launcher = "pytorch"
    if device == "cpu":
        wrapper = dict(cfg.get("model_wrapper_cfg") or {})
        wrapper.setdefault("type", "MMDistributedDataParallel")
        wrapper.setdefault("device_ids", None)
        # what Runner.wrap_model gives its default wrapper (mmengine/runner/runner.py)
        wrapper.setdefault("broadcast_buffers", False)
        wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
        cfg.model_wrapper_cfg = wrapper
    if rule is None:
        rule = cfg.auto_scale_lr = dict(enable=True, base_batch_size=batch)
    return {"world_size": size, "global_batch": size * batch, "lr_scaled": _scaled_lr(rule, lr, size * batch)}


def _scaled_lr(rule: dict | None, lr: float | None, global_batch: int) -> float | None:
    """The learning rate mmengine trains with under ``auto_scale_lr`` ``rule``: ``lr`` x
    ``global_batch / base_batch_size`` when enabled (``Runner.scale_lr``, mmengine/runner/runner.py).

    Raises:
        OtxlikeError: Enabled without ``base_batch_size``.
    """
    if not rule or not rule.get("enable", False) or lr is None:
        return lr
    if "base_batch_size" not in rule:
        raise OtxlikeError("model.py's auto_scale_lr is enabled but has no base_batch_size",
                           "add base_batch_size=<the batch size its lr is given for> to auto_scale_lr")
    return lr * global_batch / rule["base_batch_size"]


def norm_sync_hook():
    """An mmengine ``Hook`` that sets the floating-point buffers of every normalisation layer
    (BatchNorm's running mean and variance) to their mean over the ranks after each training
    epoch and before each validation.

    DDP averages gradients but not buffers (mmengine's wrapper: ``broadcast_buffers=False``), so
    each rank's running statistics come from its own share of the images; their mean is what
    one process would have computed on the global batches for the running mean (exactly, with
    equal shares), so the checkpoint rank 0 saves and the validation every rank runs use the same
    statistics. Follows mmdet's ``SyncNormHook`` (``mmdet/engine/hooks/sync_norm_hook.py``, there
    before validation only) with mmengine's ``all_reduce_dict``; SyncBatchNorm would need CUDA.
    """
    from mmengine.dist import all_reduce_dict
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from torch import nn

    class SyncNormBuffers(Hook):
        priority = "ABOVE_NORMAL"  # before CheckpointHook (VERY_LOW) saves the epoch

        def _sync(self, runner) -> None:
            if world()[1] == 1:
                return
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            states = {f"{name}.{key}": value for name, module in model.named_modules()
                      if isinstance(module, nn.modules.batchnorm._NormBase)
                      for key, value in module.named_buffers(recurse=False) if value.is_floating_point()}
            if states:
                all_reduce_dict(states, op="mean")  # in place
                model.load_state_dict(states, strict=False)

        def after_train_epoch(self, runner) -> None:
            self._sync(runner)

        def before_val_epoch(self, runner) -> None:
            self._sync(runner)

    return SyncNormBuffers()
