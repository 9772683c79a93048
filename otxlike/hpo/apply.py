"""``otxlike hpo --apply``: write a trial's values into the workspace config at the source level.

Each parameter becomes the config key it sets (:func:`config_keys`); the key's new value is read
from the run config :func:`otxlike.engine.hparams.apply` makes for the trial, so ``--apply``
writes exactly what the trial trained with. The edit is planned with
:class:`~otxlike.configedit.source.ConfigSource` in whichever file defines the key (model.py, or
data_pipeline.py for ``train_dataloader.batch_size``) and handed to
:func:`~otxlike.configedit.commit.commit` (model checked, old files to ``.backup/``, atomic
writes, a history entry), as ``build --head`` does in :mod:`otxlike.configedit.head`.
"""

from __future__ import annotations

from otxlike.configedit.commit import Committed
from otxlike.errors import OtxlikeError
from otxlike.hpo.config import HpoConfig
from otxlike.workspace.workspace import Workspace

#: The config key each ``otxlike train`` flag sets (:func:`otxlike.engine.hparams.apply`).
#: ``epochs`` follows ``train_cfg.max_epochs`` to the ``max_epochs`` variable the templates
#: define, or rewrites the number an mmdet-style ``train_cfg=dict(max_epochs=12)`` spells out.
FLAG_KEYS = {"lr": "optim_wrapper.optimizer.lr", "batch_size": "train_dataloader.batch_size",
             "optimizer": "optim_wrapper.optimizer", "scheduler": "param_scheduler", "warmup": "param_scheduler",
             "epochs": "train_cfg.max_epochs", "eval_interval": "train_cfg.val_interval",
             "early_stop": "custom_hooks"}

#: Flags that choose how this machine runs, not what model.py trains: ``precision`` becomes an
#: optimizer wrapper of the device the run finds (``AmpOptimWrapper`` on CUDA, otxlike's CPU
#: bf16 one), which written into model.py would be wrong on the next machine. ``--apply``
#: leaves them to ``otxlike train --precision``.
RUN_FLAGS = ("precision",)


def run_flags(params: dict) -> dict:
    """The values of ``params`` that ``--apply`` does not write (:data:`RUN_FLAGS`)."""
    return {k: v for k, v in params.items() if k in RUN_FLAGS}


def config_keys(params: dict) -> list[str]:
    """The dotted keys to rewrite for ``params`` (but :data:`RUN_FLAGS`), without those inside
    another one (``optimizer`` rewrites ``optim_wrapper.optimizer`` whole, its ``lr`` included)."""
    keys = list(dict.fromkeys(FLAG_KEYS.get(name, name) for name in params if name not in RUN_FLAGS))
    return [k for k in keys if not any(k != o and k.startswith(o + ".") for o in keys)]


def _target(source, path: tuple[str, ...]):
    """Where ``path`` can be written in one file: ``('replace', path)`` for a value the file
    spells out, ``('replace', (name,))`` for a value that is a top-level variable of it
    (``lr=base_lr``), ``('set', parent, key)`` to add a key to a dict the file has; or None."""
    import ast

    node = source.find(path)
    if node is not None:
        if isinstance(node, ast.Name) and source.find((node.id,)) is not None:
            return ("replace", (node.id,))
        return ("replace", path)
    parent = source.find(path[:-1]) if len(path) > 1 else None
    if isinstance(parent, ast.Dict) or isinstance(parent, ast.Call) and getattr(parent.func, "id", None) == "dict":
        return ("set", path[:-1], path[-1])
    return None


def apply_params(ws: Workspace, hpo: HpoConfig, params: dict) -> Committed:
    """Write a trial's ``params`` into model.py / data_pipeline.py, keeping every other character.

    Args:
        ws: The workspace.
        hpo: The study's config (its metric sets the eval key, as in a trial).
        params: The trial's values (``StudyResult.best.params``); :data:`RUN_FLAGS` among them
            are not written (:func:`run_flags`).

    Returns:
        The :class:`~otxlike.configedit.commit.Committed` files and backup.

    Raises:
        OtxlikeError: A key neither file spells out (nothing is written then), or the model
            with the new values does not build.
    """
    import copy

    from otxlike.configedit.commit import commit
    from otxlike.configedit.source import ConfigSource
    from otxlike.engine.hparams import apply, config_value
    from otxlike.hpo.study import trial_hparams
    from otxlike.workspace.workspace import config_scope

    cfg = ws.config()
    run = copy.deepcopy(cfg)
    hp = trial_hparams(hpo, params)
    apply(run, hp, ws.task_spec, config_scope(run))
    files = [ws.model_py, ws.data_pipeline_py]
    sources = {f: ConfigSource(f.read_text(encoding="utf-8"), f.name) for f in files}
    keys = config_keys(params)
    if "epochs" in params and "param_scheduler" not in keys:
        target = _target(sources[ws.model_py], ("train_cfg", "max_epochs"))
        if target is not None and target[1] == ("train_cfg", "max_epochs"):
            keys.append("param_scheduler")  # a spelled-out number: the schedule's ends are too
    for key in keys:
        path = tuple(key.split("."))
        value = config_value(run, key)
        for f in files:
            target = _target(sources[f], path)
            if target is None:
                continue
            if target[0] == "replace" and len(target[1]) == 1 and target[1] != path[:1]:
                sources[f].set_top(target[1][0], value)  # the variable the key names
            elif target[0] == "replace":
                sources[f].replace(target[1], value)
            else:
                sources[f].set_key(target[1], target[2], value)
            break
        else:
            if len(path) == 1:  # a new top-level variable of model.py
                sources[ws.model_py].set_top(path[0], value)
                continue
            raise OtxlikeError(f"--apply: neither model.py nor data_pipeline.py spells out '{key}'; nothing was "
                               "changed", f"set it by hand to {value!r}, or train with the values in best.yaml")
    writes = [(f, sources[f].result()) for f in files if sources[f].result() != sources[f].text]
    scope_size = int(cfg.get("input_size", 64))
    return commit(ws, writes, "hpo-apply", {"params": params}, input_size=scope_size, subject="hyper-parameters")
