"""``hpo.yaml``: what ``otxlike hpo`` tunes and how, read and checked before anything runs.

Every new workspace gets one (:func:`otxlike.workspace.workspace.hpo_yaml_text`); a workspace
without it gets the same defaults from its template. The fields (docs/hpo.md):

- ``metric`` / ``direction``: the validation metric a trial is judged by.
- ``n_trials`` and/or ``time_ratio``: the budget (the reference product's ``--hpo-time-ratio``).
- ``baseline``: trial 0 trains the workspace as it is.
- ``pruner``: ``hyperband`` | ``successive_halving`` | ``median`` | ``none`` (optuna's pruners).
- ``sampler_seed``: of optuna's ``TPESampler``.
- ``search_space``: ``otxlike train`` flags (:data:`TUNABLE`) or dotted config keys, each
  ``{type: loguniform | uniform | float | int | categorical, low, high, step, log, choices}``,
  the arguments of optuna's ``Trial.suggest_float`` / ``suggest_int`` / ``suggest_categorical``.

This module checks the file's structure and numbers (no library is imported); the checks that
need the workspace config (dotted keys, optimizer names) are
:func:`otxlike.hpo.study.check_against_workspace`'s.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otxlike.engine.hparams import HParams
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import HPO_YAML, Workspace, hpo_yaml_text

FIELDS = ("metric", "direction", "n_trials", "time_ratio", "baseline", "pruner", "sampler_seed", "search_space")
DIRECTIONS = ("maximize", "minimize")
PRUNERS = ("hyperband", "successive_halving", "median", "none")
#: Keys each search-space type takes (optuna's ``suggest_float`` / ``suggest_int`` /
#: ``suggest_categorical`` arguments; ``loguniform`` and ``uniform`` are ``float`` with ``log`` set).
KINDS = {"loguniform": ("low", "high"), "uniform": ("low", "high", "step"), "float": ("low", "high", "step", "log"),
         "int": ("low", "high", "step", "log"), "categorical": ("choices",)}
#: :class:`~otxlike.engine.hparams.HParams` fields a search space may name: the training
#: hyper-parameters of ``otxlike train`` (device, seed, weights ... are not tuned).
TUNABLE = ("lr", "batch_size", "optimizer", "scheduler", "warmup", "epochs", "eval_interval", "early_stop",
           "precision")
_INTS = ("batch_size", "warmup", "epochs", "eval_interval", "early_stop")
_NAMES = ("optimizer", "scheduler", "precision")


@dataclass(frozen=True)
class Param:
    """One search-space entry.

    Attributes:
        name: An ``otxlike train`` flag of :data:`TUNABLE` (``lr``) or a dotted config key
            (``optim_wrapper.optimizer.weight_decay``).
        kind: ``float``, ``int`` or ``categorical``.
        low: Lower bound (float / int), inclusive.
        high: Upper bound, inclusive.
        log: Sample on a log scale.
        step: Discretisation step, or None.
        choices: The values of a categorical (None, bool, int, float or str: optuna's
            ``CategoricalChoiceType``).
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @property
    def is_flag(self) -> bool:
        """True for an ``otxlike train`` flag, False for a dotted config key."""
        return self.name in TUNABLE

    def values(self) -> tuple:
        """The values to check up front: the bounds, or every choice."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)

    def suggest(self, trial) -> Any:
        """The trial's value of this parameter (``optuna.trial.Trial.suggest_*``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        suggest = trial.suggest_int if self.kind == "int" else trial.suggest_float
        if self.step is not None:
            return suggest(self.name, self.low, self.high, step=self.step)
        return suggest(self.name, self.low, self.high, log=self.log)

    def distribution(self):
        """The optuna distribution :meth:`suggest` draws from (``optuna/distributions.py``), to
        compare with what a stored study recorded for this name."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(self.low, self.high, log=self.step is None and self.log, step=self.step or 1)
        return FloatDistribution(self.low, self.high, log=self.step is None and self.log, step=self.step)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (e.g. the workspace's own setting) lies in this parameter's space."""
        if self.kind == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high and (self.kind != "int" or float(value).is_integer())


@dataclass(frozen=True)
class HpoConfig:
    """``hpo.yaml``, checked.

    Attributes:
        metric: Validation metric key, e.g. ``accuracy/top1``.
        direction: ``maximize`` or ``minimize``.
        n_trials: Trials in the study (every process together), or None.
        time_ratio: Stop starting trials once the trials' total time reaches this many times the
            baseline's, or None.
        baseline: Whether trial 0 trains the workspace as it is.
        pruner: One of :data:`PRUNERS`.
        sampler_seed: Seed of the TPE sampler, or None.
        space: The search space.
        source: The file read, or None for the template's defaults.
    """

    metric: str
    direction: str
    n_trials: int | None
    time_ratio: float | None
    baseline: bool
    pruner: str
    sampler_seed: int | None
    space: tuple[Param, ...]
    source: Path | None = None

    def with_budget(self, n_trials: int | None = None, time_ratio: float | None = None) -> "HpoConfig":
        """This config with ``--trials`` / ``--time-ratio`` given on the command line.

        Raises:
            OtxlikeError: A value out of range.
        """
        hpo = dataclasses.replace(self, n_trials=self.n_trials if n_trials is None else n_trials,
                                  time_ratio=self.time_ratio if time_ratio is None else time_ratio)
        _check_budget(hpo.n_trials, hpo.time_ratio, hpo.baseline, "--trials / --time-ratio")
        return hpo


def _closest(word: str, names) -> str:
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_budget(n_trials, time_ratio, baseline, where: str) -> None:
    if n_trials is not None and (not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1):
        raise OtxlikeError(f"{where}: n_trials must be a whole number of at least 1, got {n_trials!r}")
    if time_ratio is not None and (not _number(time_ratio) or not time_ratio > 0):
        raise OtxlikeError(f"{where}: time_ratio must be a positive number, got {time_ratio!r}",
                           "e.g. time_ratio: 4 (trials take about 4 full trainings in all)")
    if n_trials is None and time_ratio is None:
        raise OtxlikeError(f"{where}: no budget: set n_trials and/or time_ratio",
                           "e.g. n_trials: 8 in hpo.yaml, or otxlike hpo --trials 8")
    if time_ratio is not None and not baseline:
        raise OtxlikeError(f"{where}: time_ratio is measured in baseline trainings, and baseline is false",
                           "set baseline: true, or give n_trials instead of time_ratio")


def _param(name: str, entry: Any, where: str) -> Param:
    """One ``search_space`` entry, checked (structure, numbers, and each value as a flag value)."""
    at = f"{where}: search_space.{name}"
    if name not in TUNABLE and "." not in name:
        known = {f.name for f in dataclasses.fields(HParams)}
        hint = _closest(name, TUNABLE) or (f"'{name}' is not tuned; " if name in known else "")
        raise OtxlikeError(f"{at}: unknown parameter '{name}'",
                           f"{hint}tunable flags: {', '.join(TUNABLE)}; or a dotted config key such as "
                           "optim_wrapper.optimizer.weight_decay")
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise OtxlikeError(f"{at} must be a mapping with a type, got {entry!r}",
                           "e.g. {type: loguniform, low: 0.001, high: 0.1}")
    kind = entry["type"]
    if kind not in KINDS:
        raise OtxlikeError(f"{at}: unknown type '{kind}'", f"{_closest(kind, KINDS)}types: {', '.join(KINDS)}")
    extra = [k for k in entry if k != "type" and k not in KINDS[kind]]
    if extra:
        raise OtxlikeError(f"{at}: type {kind} takes no '{extra[0]}'",
                           f"{_closest(extra[0], KINDS[kind])}its keys: type, {', '.join(KINDS[kind])}")
    missing = [k for k in ("choices",) if kind == "categorical" and k not in entry] + \
              [k for k in ("low", "high") if kind != "categorical" and k not in entry]
    if missing:
        raise OtxlikeError(f"{at}: type {kind} needs '{missing[0]}'")
    if kind == "categorical":
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise OtxlikeError(f"{at}: choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise OtxlikeError(f"{at}: choice {bad[0]!r} is not a number, string, bool or null",
                               "optuna's categoricals take plain values; list several flags as several parameters")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise OtxlikeError(f"{at}: choices {choices} repeat a value")
        param = Param(name, "categorical", choices=tuple(choices))
    else:
        low, high, step, log = entry["low"], entry["high"], entry.get("step"), entry.get("log", kind == "loguniform")
        numbers = (int,) if kind == "int" else (int, float)
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers)):
                what = "a whole number" if kind == "int" else "a number"
                raise OtxlikeError(f"{at}: {key} must be {what}, got {value!r}")
        if not low < high:
            raise OtxlikeError(f"{at}: low ({low}) must be below high ({high})")
        if not isinstance(log, bool):
            raise OtxlikeError(f"{at}: log must be true or false, got {log!r}")
        if log and low <= 0:
            raise OtxlikeError(f"{at}: a log scale needs low > 0, got {low}")
        if step is not None and (not step > 0 or log):
            raise OtxlikeError(f"{at}: step must be positive and cannot go with a log scale, got {step}")
        param = Param(name, "int" if kind == "int" else "float", low, high, log, step)
    if param.is_flag:
        _check_flag(param, at)
    return param


def _check_flag(param: Param, at: str) -> None:
    """Every value of an ``otxlike train`` flag's space must be one the flag takes."""
    if param.name in _INTS and param.kind == "float":
        raise OtxlikeError(f"{at}: {param.name} takes whole numbers", "use type: int or categorical")
    if param.name in _NAMES and param.kind != "categorical":
        raise OtxlikeError(f"{at}: {param.name} takes names", "use type: categorical with choices")
    for value in param.values():
        if param.name in _NAMES and not isinstance(value, str) or \
                param.name not in _NAMES and (not _number(value) or param.name in _INTS and not isinstance(value, int)):
            raise OtxlikeError(f"{at}: {value!r} is not a value of --{param.name.replace('_', '-')}")
        try:
            HParams(**{param.name: value}).check()
        except OtxlikeError as exc:
            raise OtxlikeError(f"{at}: {exc.message}", exc.hint) from None


def parse_hpo_config(doc: Any, where: str, source: Path | None = None) -> HpoConfig:
    """Check the content of an ``hpo.yaml`` (``doc``, as YAML-loaded).

    Args:
        doc: The loaded YAML.
        where: The file's name for messages.
        source: The file, for :attr:`HpoConfig.source`.

    Raises:
        OtxlikeError: One line naming the key, the bad value and what fits: an unknown key (with
            the closest names), a bad type, ``low >= high``, a value a flag does not take, no budget.
    """
    if not isinstance(doc, dict):
        raise OtxlikeError(f"{where} must be a mapping of {', '.join(FIELDS)}", "see docs/hpo.md")
    for key in doc:
        if key not in FIELDS:
            raise OtxlikeError(f"{where}: unknown key '{key}'", f"{_closest(str(key), FIELDS)}keys: {', '.join(FIELDS)}")
    metric = doc.get("metric")
    if not isinstance(metric, str) or not metric:
        raise OtxlikeError(f"{where}: metric must be a metric key, got {metric!r}", "e.g. metric: accuracy/top1")
    direction = doc.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise OtxlikeError(f"{where}: direction must be maximize or minimize, got {direction!r}")
    pruner = doc.get("pruner", "hyperband")
    if pruner not in PRUNERS:
        raise OtxlikeError(f"{where}: unknown pruner {pruner!r}", f"{_closest(str(pruner), PRUNERS)}pruners: "
                           f"{', '.join(PRUNERS)}")
    baseline = doc.get("baseline", True)
    if not isinstance(baseline, bool):
        raise OtxlikeError(f"{where}: baseline must be true or false, got {baseline!r}")
    seed = doc.get("sampler_seed", 0)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise OtxlikeError(f"{where}: sampler_seed must be a whole number >= 0 or null, got {seed!r}")
    n_trials, time_ratio = doc.get("n_trials"), doc.get("time_ratio")
    _check_budget(n_trials, time_ratio, baseline, where)
    space = doc.get("search_space")
    if not isinstance(space, dict) or not space:
        raise OtxlikeError(f"{where}: search_space must map parameters to their ranges",
                           "e.g. search_space: {lr: {type: loguniform, low: 0.001, high: 0.1}}")
    params = tuple(_param(str(name), entry, where) for name, entry in space.items())
    return HpoConfig(metric, direction, n_trials, time_ratio, baseline, pruner, seed, params, source)


def read_hpo_config(ws: Workspace) -> HpoConfig:
    """The workspace's ``hpo.yaml``, checked; the template's defaults when the workspace has none
    (it was built before otxlike wrote one).

    Raises:
        OtxlikeError: The file is not YAML (with the line) or :func:`parse_hpo_config` refuses it.
    """
    path = ws.root / HPO_YAML
    if not path.is_file():
        return parse_hpo_config(yaml.safe_load(hpo_yaml_text(ws.template)), f"{HPO_YAML} (the template's defaults)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise OtxlikeError(f"{path} is not valid YAML{where}", "fix the file and run again") from exc
    return parse_hpo_config(doc, HPO_YAML, path)
