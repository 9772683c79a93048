"""An optuna study over a workspace's training: each trial is one real ``otxlike train``.

A trial trains the workspace as it is (model.py and data_pipeline.py are never touched) with
:class:`~otxlike.engine.hparams.HParams` and ``--cfg-options`` built from the trial's
suggestions, in its own folder ``outputs/hpo/<study>/trial_<n>/``. After every epoch the
validation metric goes to the pruner (``Trial.report`` / ``Trial.should_prune``, the pattern of
optuna's ``optuna/integration`` callbacks); a pruned trial stops after that epoch through
:func:`~otxlike.engine.train.train`'s ``on_progress`` and is recorded as PRUNED, a trial whose
training raises is recorded as FAIL with its one-line reason (user attribute ``reason``).

Storage and scale-out are optuna's (``optuna/storages``): an RDB URL (``sqlite:///...``,
``postgresql://...``) or a journal file (``JournalStorage(JournalFileBackend(path))``), by
default ``outputs/hpo/<study>/journal.log``. Every process that opens the same storage and study
name works on the same study, so ``--jobs J`` starts J worker processes on the storage and
several machines can run ``otxlike hpo --storage URL --study-name S`` at once. Processes, not
threads (optuna's ``n_jobs``): mmengine keeps global state per process (the default scope, the
``MessageHub`` / ``Visualizer`` / ``MMLogger`` instances by name) and a run sends stdout to its
log file (:func:`~otxlike.engine.runner.prints_to_log`), neither of which two runs in one process
can share. The budget (``n_trials``, ``time_ratio``) is the study's, counted from the storage,
so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import copy
import datetime
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from otxlike.engine.hparams import HParams, config_value
from otxlike.errors import OtxlikeError, one_line
from otxlike.hpo.config import TUNABLE, HpoConfig
from otxlike.workspace.workspace import Workspace

STUDY_FOLDER = "hpo"  # outputs/hpo/<study name>/
JOURNAL = "journal.log"
DEFAULT_STUDY = "default"
#: RDB heartbeat: a RUNNING trial whose process stopped beating for GRACE seconds is marked FAIL
#: by the next trial to start (optuna's ``fail_stale_trials``); journal files have no heartbeat.
HEARTBEAT, GRACE = 60, 180
#: MedianPruner: prune against the median only once this many trials have finished.
MEDIAN_STARTUP_TRIALS = 2


#: User attribute of a trial created after the budget was spent (by another process) and never run.
NOT_RUN = "not_run"


#: In the study folder: held from a process's budget check until the trial it asks for exists.
ASK_LOCK = "ask.lock"


class BudgetSpent(Exception):
    """Raised in a trial that another process's trials left no budget for.

    Each process checks the budget when its previous trial ends (``stop_when_spent``). On one
    machine the processes of a workspace hold :data:`ASK_LOCK` from that check until the next
    trial exists, so none starts a trial past the budget. Processes on other machines (a shared
    RDB storage) hold no common lock: between one's check and its next trial's creation another
    may start the last one. The storage numbers trials atomically, so a trial counts the trials
    numbered before it and, when they spend the budget, ends here (FAIL, marked :data:`NOT_RUN`,
    neither counted nor shown), so ``n_trials`` is never exceeded however many processes share
    the study.
    """


@dataclass(frozen=True)
class TrialView:
    """One trial as the storage has it.

    Attributes:
        number: optuna's trial number (0, 1, ... across every process of the study).
        state: ``waiting``, ``running``, ``complete``, ``pruned`` or ``failed``.
        params: The trial's parameter values.
        value: The metric: the trial's value when complete, else the last epoch's reported.
        epoch: The last epoch reported, or None.
        seconds: Time the trial has taken (so far, if running), or None before it started.
        reason: Why it failed (or was pruned, or interrupted).
        baseline: Whether it trained the workspace as it is.
        run_dir: Its run folder, on ``host``.
        host: The machine that ran it.
        checkpoint: Its run's checkpoint (the best epoch's), once it ended.
        counted: Whether it counts toward ``n_trials`` (an interrupted one does not).
    """

    number: int
    state: str
    params: dict
    value: float | None
    epoch: int | None
    seconds: float | None
    reason: str | None
    baseline: bool
    run_dir: str | None
    host: str | None
    checkpoint: str | None
    counted: bool


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` did.

    Attributes:
        study_name: The study.
        storage: Its storage (a URL or a journal file path).
        trials: Every trial of the study.
        ran: Trials this call ran.
        best: The best complete trial, or None.
        baseline: The baseline trial (the workspace as it is), or None.
        out_dir: ``outputs/<time>_hpo/`` with ``best.yaml``, ``trials.csv`` and the best
            trial's checkpoint.
        checkpoint: That checkpoint, or None (the trial ran on another machine).
        stopped: Why no further trial was started (the budget reached).
    """

    study_name: str
    storage: str
    trials: tuple[TrialView, ...]
    ran: int
    best: TrialView | None
    baseline: TrialView | None
    out_dir: Path
    checkpoint: Path | None
    stopped: str


def study_dir(ws: Workspace, study_name: str) -> Path:
    """``outputs/hpo/<study_name>/``: the study's trial folders (and its default journal)."""
    return ws.outputs / STUDY_FOLDER / study_name


def storage_location(ws: Workspace, study_name: str, storage: str | None) -> str:
    """The storage as given (an RDB URL or a journal file path, made absolute), or the default
    journal file ``outputs/hpo/<study>/journal.log``."""
    if storage is None:
        return str(study_dir(ws, study_name) / JOURNAL)
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def open_storage(location: str):
    """optuna's storage for ``location``: ``RDBStorage`` (with a heartbeat) for a URL, else
    ``JournalStorage(JournalFileBackend(path))``.

    Raises:
        OtxlikeError: The database cannot be reached, or the journal's folder does not exist.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in location:
        try:
            return RDBStorage(location, heartbeat_interval=HEARTBEAT, grace_period=GRACE)
        except Exception as exc:
            raise OtxlikeError(f"--storage {location}: cannot open it: {type(exc).__name__}: {one_line(exc, 200)}",
                               "give sqlite:///FILE, postgresql://USER@HOST/DB (with its driver installed), "
                               "or a journal file path") from exc
    path = Path(location)
    if not path.parent.is_dir():
        raise OtxlikeError(f"--storage {location}: its folder {path.parent} does not exist",
                           "create it (a shared disk for several machines), or leave --storage out")
    return JournalStorage(JournalFileBackend(str(path)))


def make_pruner(name: str):
    """optuna's pruner of that name; epochs are the resource (``HyperbandPruner`` and
    ``SuccessiveHalvingPruner`` with ``min_resource=1``, the maximum taken from the first
    complete trial, as optuna's ``max_resource='auto'`` does)."""
    from optuna.pruners import HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner

    return {"hyperband": lambda: HyperbandPruner(min_resource=1, reduction_factor=3),
            "successive_halving": lambda: SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            "median": lambda: MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS),
            "none": NopPruner}[name]()


def trial_hparams(hpo: HpoConfig, values: dict, weights: str = "auto") -> HParams:
    """The ``otxlike train`` overrides of one trial: its flag values as :class:`HParams` fields,
    its dotted keys as ``--cfg-options KEY=VALUE`` (parsed back by mmengine's ``DictAction``), and
    the study's metric as the eval key that picks the run's best checkpoint (higher-is-better:
    only when maximizing); ``weights`` is ``otxlike train --weights`` for every trial."""
    flags = {k: v for k, v in values.items() if k in TUNABLE}
    options = tuple(f"{k}={v}" for k, v in values.items() if k not in TUNABLE)
    return HParams(**flags, cfg_options=options, eval_key=hpo.metric if hpo.direction == "maximize" else None,
                   weights=weights)


def workspace_values(ws: Workspace, hpo: HpoConfig) -> dict:
    """Check the search space against the workspace config and read the workspace's own value of
    each parameter (what the baseline trains with).

    Every bound and choice is written into a copy of the config with
    :func:`otxlike.engine.hparams.apply`, as a trial would: an optimizer that is not registered,
    a metric the task does not report, a scheduler on an iteration-based loop are refused here,
    before any trial.

    Returns:
        ``{name: value}`` of the parameters whose current value the config has (a scheduler has
        none: model.py's schedule is not one of the flag's names).

    Raises:
        OtxlikeError: ``hpo.yaml: search_space.<name> ...``: a dotted key the config does not
            have (with the closest ones), or a value the run could not use.
    """
    import difflib

    from otxlike.engine.hparams import apply, effective
    from otxlike.workspace.workspace import config_scope

    cfg = ws.config()
    task, scope = ws.task_spec, config_scope(cfg)
    where = hpo.source.name if hpo.source else "hpo.yaml"
    if hpo.direction == "maximize":
        try:
            apply(copy.deepcopy(cfg), HParams(eval_key=hpo.metric), task, scope)
        except OtxlikeError as exc:
            raise OtxlikeError(f"{where}: metric '{hpo.metric}': {exc.message}", exc.hint) from None
    current = effective(cfg, HParams(), "cpu")
    current["warmup"] = current["warmup_iters"]
    found = {}
    for param in hpo.space:
        if param.is_flag:
            if param.name in current and param.name != "scheduler":
                found[param.name] = current[param.name]
        else:
            try:
                found[param.name] = config_value(cfg, param.name)
            except KeyError:
                keys = _dotted_keys(cfg.to_dict())
                close = difflib.get_close_matches(param.name, keys, n=3, cutoff=0.6)
                raise OtxlikeError(f"{where}: search_space.{param.name}: the workspace config has no such key",
                                   (f"did you mean {', '.join(close)}? " if close else "") +
                                   "give a dotted key of model.py / data_pipeline.py") from None
        for value in param.values():
            try:
                apply(copy.deepcopy(cfg), trial_hparams(hpo, {param.name: value}), task, scope)
            except OtxlikeError as exc:
                raise OtxlikeError(f"{where}: search_space.{param.name} = {value!r}: {exc.message}", exc.hint) from None
    return found


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in [prefix + str(key), *_dotted_keys(value, f"{prefix}{key}.")]]
    return []


def _seconds(trial) -> float | None:
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now()
    return (end - trial.datetime_start).total_seconds()


def trial_views(study) -> tuple[TrialView, ...]:
    """Every trial of the study, as its storage has it now (but those created after the budget was
    spent and never run, :class:`BudgetSpent`)."""
    from optuna.trial import TrialState

    names = {TrialState.WAITING: "waiting", TrialState.RUNNING: "running", TrialState.COMPLETE: "complete",
             TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    views = []
    for t in study.get_trials(deepcopy=False):
        if NOT_RUN in t.user_attrs:
            continue
        steps = sorted(t.intermediate_values)
        value = t.value if t.state == TrialState.COMPLETE else (t.intermediate_values[steps[-1]] if steps else None)
        reason = t.user_attrs.get("reason") or t.user_attrs.get("interrupted") or t.user_attrs.get("pruned")
        counted = t.state != TrialState.WAITING and not (t.state == TrialState.FAIL and "reason" not in t.user_attrs)
        views.append(TrialView(t.number, names[t.state], dict(t.params), value, steps[-1] if steps else None,
                               _seconds(t), reason, bool(t.user_attrs.get("baseline")), t.user_attrs.get("run_dir"),
                               t.user_attrs.get("host"), t.user_attrs.get("checkpoint"), counted))
    return tuple(views)


def budget_spent(trials: tuple[TrialView, ...], hpo: HpoConfig) -> str | None:
    """Why no further trial may start (``n_trials`` reached, or the trials' total time at
    ``time_ratio`` x the baseline's), or None while budget is left.

    Counted: complete, pruned, running and failed trials; not those interrupted (a Ctrl-C, a
    process that died), so a resumed study runs them again. A failed baseline spends a budget
    of ``time_ratio`` alone: there is no time to measure by (a baseline that cannot train says the
    trials will not either).
    """
    counted = [t for t in trials if t.counted]
    if hpo.n_trials is not None and len(counted) >= hpo.n_trials:
        return f"{len(counted)} of n_trials {hpo.n_trials} trials run or running"
    if hpo.time_ratio is not None:
        base = next((t for t in trials if t.baseline and t.state == "complete"), None)
        failed = next((t for t in trials if t.baseline and t.counted and t.state == "failed"), None)
        if base is None and failed is not None and hpo.n_trials is None:
            return f"the baseline (trial {failed.number}) failed, so time_ratio has no time to measure by"
        if base is not None:
            spent = sum(t.seconds or 0 for t in counted)
            if spent >= hpo.time_ratio * base.seconds:
                return (f"trials took {spent:.0f} s, time_ratio {hpo.time_ratio:g} x the baseline's "
                        f"{base.seconds:.0f} s")
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study) -> int:
    """Mark FAIL (``interrupted``, not counted) the RUNNING trials of this machine whose process is
    gone (a ``kill -9``, a power cut): a journal file has no heartbeat to find them (RDB storages
    do, :data:`HEARTBEAT`). Returns how many."""
    from optuna.trial import TrialState

    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and not _pid_alive(pid):
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", f"its process {pid} ended")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            n += 1
    return n


class Objective:
    """One trial: suggestions -> :class:`HParams` -> :func:`otxlike.engine.train.train`.

    Args:
        ws: The workspace.
        hpo: The study's config.
        folder: The study folder; the trial runs in ``folder/trial_<n>``.
        on_update: Called after every epoch report and at the end of each trial.
        weights: ``otxlike train --weights`` of every trial (``auto``, ``none``, ``required``).
        created: Called once the trial exists and its budget check is done, before it trains
            (:func:`run_worker` releases :data:`ASK_LOCK` there).
    """

    def __init__(self, ws: Workspace, hpo: HpoConfig, folder: Path, on_update: Callable[[], None] | None = None,
                 weights: str = "auto", created: Callable[[], None] | None = None):
        self.ws, self.hpo, self.folder, self.on_update, self.weights = ws, hpo, folder, on_update, weights
        self.created = created
        self.ran = 0

    def __call__(self, trial) -> float:
        import optuna

        from otxlike.engine.train import train

        try:
            earlier = tuple(v for v in trial_views(trial.study) if v.number < trial.number)
        finally:
            if self.created is not None:
                self.created()
        spent = budget_spent(earlier, self.hpo)
        if spent:  # another process took the last trial between our check and this trial's creation
            trial.set_user_attr(NOT_RUN, spent)
            raise BudgetSpent(spent)
        self.ran += 1
        run_dir = self.folder / f"trial_{trial.number:03d}"
        for key, value in (("host", socket.gethostname()), ("pid", os.getpid()), ("run_dir", str(run_dir))):
            trial.set_user_attr(key, value)
        baseline = bool(trial.user_attrs.get("baseline"))
        fixed = trial.user_attrs.get("baseline_params") or []
        pruned: list[int] = []

        def on_progress(p) -> bool:
            if p.phase != "val" or self.hpo.metric not in (p.metrics or {}):
                return False
            trial.report(float(p.metrics[self.hpo.metric]), p.epoch)
            if self.on_update is not None:
                self.on_update()
            if not baseline and p.epoch < p.max_epochs and trial.should_prune():
                pruned.append(p.epoch)
                return True
            return False

        try:
            values = {p.name: p.suggest(trial) for p in self.hpo.space if not baseline or p.name in fixed}
            hp = trial_hparams(self.hpo, {} if baseline else values, self.weights)
            run_dir.mkdir(parents=True, exist_ok=True)
            result = train(self.ws, on_progress=on_progress, hparams=hp, run_dir=run_dir)
            metrics = result.metrics
            if self.hpo.metric not in metrics:
                raise OtxlikeError(f"the run reported no '{self.hpo.metric}' (it reported: "
                                   f"{', '.join(metrics) or 'nothing'})", "set metric in hpo.yaml to one of those")
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", "interrupted (Ctrl-C)")
            raise
        except Exception as exc:
            reason = exc.message if isinstance(exc, OtxlikeError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("reason", one_line(reason, 300))
            raise
        finally:
            if self.on_update is not None:
                self.on_update()
        trial.set_user_attr("checkpoint", str(result.checkpoint) if result.checkpoint else None)
        trial.set_user_attr("train_seconds", result.seconds)
        if pruned:
            trial.set_user_attr("pruned", f"pruned after epoch {pruned[0]}")
            raise optuna.TrialPruned(f"pruned after epoch {pruned[0]}")
        return float(metrics[self.hpo.metric])


def open_study(location: str, study_name: str, hpo: HpoConfig, seed: int | None = None):
    """Load the study ``study_name`` of the storage at ``location`` with the TPE sampler (seeded)
    and the config's pruner."""
    import optuna

    return optuna.load_study(study_name=study_name, storage=open_storage(location),
                             sampler=optuna.samplers.TPESampler(seed=seed), pruner=make_pruner(hpo.pruner))


def run_worker(root: str, location: str, study_name: str, hpo: HpoConfig, seed: int | None,
               threads: int | None = None, on_update: Callable[[tuple[TrialView, ...]], None] | None = None,
               weights: str = "auto") -> int:
    """Run trials of the study until its budget is spent (``optuna.Study.optimize`` with a callback
    that stops it, counting every process's trials in the storage).

    The budget check and the creation of the next trial are one step for the processes of a
    workspace: :data:`ASK_LOCK` (``filelock``) is taken before the check (first in this function,
    then in the callback after each trial) and released by the objective once optuna's
    ``study.ask`` made the trial, so two processes never both take the last trial (the race
    :class:`BudgetSpent` guards across machines).

    Args:
        root: The workspace folder.
        location: The storage (:func:`storage_location`).
        study_name: The study (it exists).
        hpo: The study's config.
        seed: The TPE sampler's seed in this process.
        threads: CPU threads of torch in this process (``--jobs`` share the cores), or None.
        on_update: Called with every trial of the study after each epoch and trial.
        weights: ``otxlike train --weights`` of every trial.

    Returns:
        The number of trials this process ran.
    """
    import optuna
    from filelock import FileLock

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported as trial reasons
    if threads:
        import torch

        torch.set_num_threads(threads)
    ws = Workspace.load(root)
    study = open_study(location, study_name, hpo, seed)
    update = (lambda: on_update(trial_views(study))) if on_update is not None else None
    folder = study_dir(ws, study_name)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / ASK_LOCK)
    objective = Objective(ws, hpo, folder, update, weights, created=lock.release)

    def stop_when_spent(study, trial) -> None:
        lock.acquire()  # released by the next trial's objective, or below once optimize returns
        if budget_spent(trial_views(study), hpo):
            study.stop()

    lock.acquire()
    try:
        if budget_spent(trial_views(study), hpo):
            return 0
        study.optimize(objective, callbacks=[stop_when_spent], catch=(Exception,), gc_after_trial=True)
    finally:
        lock.release(force=True)
    return objective.ran


def _worker_process(queue, index: int, *args) -> None:
    """A ``--jobs`` worker: :func:`run_worker`, its outcome put on ``queue``."""
    try:
        queue.put((index, "done", run_worker(*args)))
    except KeyboardInterrupt:
        queue.put((index, "interrupted", 0))
    except Exception as exc:
        queue.put((index, "error", one_line(exc, 300)))


def _enqueue_baseline(study, baseline: dict) -> None:
    study.enqueue_trial(baseline, user_attrs={"baseline": True, "baseline_params": sorted(baseline)})


def requeue_interrupted_baseline(study, baseline: dict) -> bool:
    """Enqueue the baseline trial again when its run was interrupted (a Ctrl-C, a killed process):
    without it a resumed study would have no baseline to compare with, nor a time for
    ``time_ratio``. Returns whether it did."""
    views = trial_views(study)
    ran = [t for t in views if t.baseline]
    if not ran or any(t.counted or t.state == "waiting" for t in ran):
        return False
    _enqueue_baseline(study, baseline)
    return True


def create_or_load(location: str, study_name: str, hpo: HpoConfig, baseline: dict) -> bool:
    """Create the study (and enqueue the baseline trial), or load it if it exists.

    Returns:
        True if this call created it.

    Raises:
        OtxlikeError: The existing study optimises another metric or direction.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created ..." on the console
    storage = open_storage(location)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction=hpo.direction)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage)
        created = False
    if created:
        study.set_user_attr("metric", hpo.metric)
        if hpo.baseline:
            _enqueue_baseline(study, baseline)
        return True
    metric = study.user_attrs.get("metric", hpo.metric)  # not yet set: its creator is at it
    if metric != hpo.metric or study.direction.name.lower() != hpo.direction:
        raise OtxlikeError(f"study '{study_name}' in {location} optimises {metric} ({study.direction.name.lower()}), "
                           f"hpo.yaml says {hpo.metric} ({hpo.direction})",
                           "pass another --study-name for a new study, or set hpo.yaml back")
    check_space(study, hpo, study_name)
    return False


def check_space(study, hpo: HpoConfig, study_name: str) -> None:
    """Refuse an hpo.yaml whose search space optuna cannot draw from in the stored study: a
    parameter whose kind, ``log`` setting or categorical choices differ from those its trials
    recorded (``optuna.distributions.check_distribution_compatibility``; ranges of numbers may
    change). Without this each new trial would fail at its first suggestion.

    Raises:
        OtxlikeError: Naming the parameter, what the study has and what hpo.yaml says.
    """
    from optuna.distributions import check_distribution_compatibility

    stored: dict = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            stored.setdefault(name, dist)
    for p in hpo.space:
        if p.name not in stored:
            continue
        try:
            check_distribution_compatibility(stored[p.name], p.distribution())
        except ValueError:
            raise OtxlikeError(f"study '{study_name}' draws '{p.name}' from {_describe(stored[p.name])}, hpo.yaml "
                               f"from {_describe(p.distribution())}; optuna cannot change that within a study",
                               "pass a new --study-name for the new search space, or set hpo.yaml back") from None


def _describe(dist) -> str:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return f"choices {list(dist.choices)}"
    kind = "int" if isinstance(dist, IntDistribution) else "float"
    return f"{'log-' if dist.log else ''}{kind} [{dist.low}, {dist.high}]"


def run_study(ws: Workspace, hpo: HpoConfig, study_name: str = DEFAULT_STUDY, storage: str | None = None,
              jobs: int = 1, on_update: Callable[[tuple[TrialView, ...]], None] | None = None,
              weights: str = "auto") -> StudyResult:
    """Run (or resume, or join) the study ``study_name`` on the workspace until its budget is spent.

    Args:
        ws: The workspace.
        hpo: Its ``hpo.yaml`` (:func:`otxlike.hpo.config.read_hpo_config`), with the budget.
        study_name: The study; the same name on the same storage continues it.
        storage: An RDB URL or a journal file path (default: ``outputs/hpo/<study>/journal.log``).
        jobs: Worker processes on this machine (1: the trials run in this process).
        on_update: Called with every trial of the study (this process's and others') while it runs.
        weights: ``otxlike train --weights`` of every trial: ``auto`` (load model.py's pretrained
            checkpoints, or train from random weights with a warning), ``none``, ``required``.

    Returns:
        :class:`StudyResult`; ``best.yaml``, ``trials.csv`` and the best trial's checkpoint are in
        its ``out_dir``.

    Raises:
        OtxlikeError: The search space does not fit the workspace (before any trial), the
            storage cannot be opened, a worker process failed, or every trial of the study failed.
    """
    if jobs < 1:
        raise OtxlikeError(f"--jobs must be at least 1, got {jobs}")
    HParams(weights=weights).check()
    if not study_name or "/" in study_name or study_name.startswith("."):
        raise OtxlikeError(f"--study-name '{study_name}' is not a plain name", "e.g. --study-name lr-sweep")
    ws.require_writable(ws.outputs)
    baseline = {k: v for k, v in workspace_values(ws, hpo).items()
                if any(p.name == k and p.contains(v) for p in hpo.space)}
    location = storage_location(ws, study_name, storage)
    folder = study_dir(ws, study_name)
    folder.mkdir(parents=True, exist_ok=True)
    created = create_or_load(location, study_name, hpo, baseline)
    watcher = open_study(location, study_name, hpo)
    fail_dead_trials(watcher)
    if not created and hpo.baseline:
        requeue_interrupted_baseline(watcher, baseline)
    seeds = [hpo.sampler_seed + i if created and hpo.sampler_seed is not None else None for i in range(jobs)]
    if jobs == 1:
        ran = run_worker(str(ws.root), location, study_name, hpo, seeds[0], None, on_update, weights)
    else:
        ran = _run_processes(ws, location, study_name, hpo, seeds, watcher, on_update, weights)
    trials = trial_views(watcher)
    if on_update is not None:
        on_update(trials)
    return _finish(ws, watcher, hpo, study_name, location, trials, ran)


def _run_processes(ws, location, study_name, hpo, seeds, watcher, on_update, weights) -> int:
    """Run ``len(seeds)`` :func:`run_worker` processes (spawned: a fresh interpreter each, no
    forked torch state) and report the storage's trials every second until they end."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // len(seeds))
    procs = [ctx.Process(target=_worker_process, args=(queue, i, str(ws.root), location, study_name, hpo, seed,
                                                       threads, None, weights), daemon=False) for i, seed in enumerate(seeds)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if on_update is not None:
                on_update(trial_views(watcher))
            time.sleep(1.0)
    finally:
        for p in procs:
            p.join()
    outcomes = [queue.get(timeout=5) for _ in procs if not queue.empty()] if procs else []
    errors = [msg for _, kind, msg in outcomes if kind == "error"]
    crashed = [i for i, p in enumerate(procs) if p.exitcode not in (0, None)]
    if errors or crashed:
        raise OtxlikeError(f"{len(errors) + len(crashed)} of {len(procs)} --jobs workers stopped: "
                           f"{errors[0] if errors else f'worker {crashed[0]} exited with code {procs[crashed[0]].exitcode}'}",
                           "the trials they finished are in the study; run the same command again to continue")
    if any(kind == "interrupted" for _, kind, _ in outcomes):
        raise KeyboardInterrupt
    return sum(n for _, kind, n in outcomes if kind == "done")


def _finish(ws, study, hpo, study_name, location, trials, ran) -> StudyResult:
    """Write ``outputs/<time>_hpo/`` (best.yaml, trials.csv, the best checkpoint) and record it."""
    import csv
    import io
    import shutil

    from otxlike.fileio import dump_yaml
    from otxlike.workspace.runs import staged_run_dir

    finished = [t for t in trials if t.state in ("complete", "pruned", "failed")]
    complete = [t for t in trials if t.state == "complete"]
    failed = [t for t in trials if t.state == "failed" and t.counted]
    if not complete and failed and len(failed) == len([t for t in finished if t.counted]):
        raise OtxlikeError(f"every trial of study '{study_name}' failed ({len(failed)} of {len(failed)}); "
                           f"trial {failed[0].number}: {failed[0].reason}",
                           "fix the cause (the search space or the workspace), then run again with a new --study-name")
    sign = 1 if hpo.direction == "maximize" else -1
    best = max(complete, key=lambda t: (sign * t.value, -t.number)) if complete else None
    base = next((t for t in trials if t.baseline and t.counted), None) or next((t for t in trials if t.baseline), None)
    names = sorted({k for t in trials for k in t.params})
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["number", "state", hpo.metric, "epoch", "seconds", "baseline", *names, "reason", "host",
                     "run_dir"])
    for t in trials:
        writer.writerow([t.number, t.state, "" if t.value is None else t.value, t.epoch or "",
                         "" if t.seconds is None else round(t.seconds, 1), t.baseline,
                         *(t.params.get(n, "") for n in names), t.reason or "", t.host or "", t.run_dir or ""])
    checkpoint = None
    with staged_run_dir(ws, "hpo") as stage:
        (stage.path / "trials.csv").write_text(text.getvalue(), encoding="utf-8")
        source = None
        if best is not None:
            saved = best.checkpoint
            source = Path(saved) if saved and best.host == socket.gethostname() and Path(saved).is_file() else None
            if source is not None:
                shutil.copy2(source, stage.path / source.name)
        doc = {
            "study": study_name, "storage": location, "metric": hpo.metric, "direction": hpo.direction,
            "best": None if best is None else {
                "trial": best.number, "value": best.value, "params": best.params,
                "hparams": _hparams_doc(trial_hparams(hpo, best.params)), "run_dir": best.run_dir, "host": best.host},
            "baseline": None if base is None else {"trial": base.number, "state": base.state, "value": base.value},
            "trials": {s: sum(t.state == s for t in trials) for s in ("complete", "pruned", "failed", "running")},
        }
        (stage.path / "best.yaml").write_text(dump_yaml(doc), encoding="utf-8")
    out = stage.final
    if source is not None:
        checkpoint = out / source.name
    ws.record("hpo", {"run": out.name, "study": study_name, "trials": len(trials), "ran": ran,
                      "best": None if best is None else {"value": best.value, "params": best.params}})
    return StudyResult(study_name, location, trials, ran, best, base, out, checkpoint,
                       budget_spent(trials, hpo) or "")


def _hparams_doc(hp: HParams) -> dict:
    """The ``otxlike train`` flags of a trial, for best.yaml (``otxlike train --lr ... ``)."""
    doc = {k: v for k, v in ((k, getattr(hp, k)) for k in TUNABLE) if v is not None}
    if hp.cfg_options:
        doc["cfg_options"] = list(hp.cfg_options)
    return doc
