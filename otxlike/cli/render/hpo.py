"""The ``otxlike hpo`` display: a live table of the study's trials, and the closing lines."""

from __future__ import annotations

import contextlib

STATE_STYLE = {"complete": "green", "pruned": "yellow", "failed": "red", "running": "cyan", "waiting": "dim"}


def _value(value) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(trials, config, title: str = "Trials"):
    """A rich table of :class:`~otxlike.hpo.study.TrialView` rows: number, state, the metric (the
    last epoch's while running or pruned), epochs, time, every parameter, the reason."""
    from rich.table import Table

    names = [p.name for p in config.space]
    names += sorted({k for t in trials for k in t.params} - set(names))
    table = Table(title=title, title_justify="left")
    for column in ("#", "state", config.metric, "epoch", "s", *names, "reason"):
        table.add_column(column, overflow="fold")
    for t in trials:
        number = f"{t.number} (baseline)" if t.baseline else str(t.number)
        state = f"[{STATE_STYLE.get(t.state, '')}]{t.state}[/]"
        table.add_row(number, state, _value(t.value), _value(t.epoch), _value(None if t.seconds is None else
                                                                               round(t.seconds)),
                      *(_value(t.params.get(n)) for n in names), t.reason or "")
    return table


@contextlib.contextmanager
def live_trials(out, config):
    """Yield an ``on_update(trials)`` for :func:`otxlike.hpo.study.run_study`: a live table on a
    terminal; without one (logs, CI), one line per trial when it ends."""
    from rich.live import Live

    if not out.is_terminal:
        reported: set = set()

        def on_line(trials) -> None:
            for t in trials:
                if t.state in ("complete", "pruned", "failed") and t.number not in reported:
                    reported.add(t.number)
                    params = ", ".join(f"{k} {_value(v)}" for k, v in t.params.items())
                    reason = f" ({t.reason})" if t.reason and t.state != "complete" else ""
                    out.print(f"[*] trial {t.number}{' (baseline)' if t.baseline else ''} {t.state}: "
                              f"{config.metric} {_value(t.value)} after {t.epoch or 0} epochs"
                              f"{', ' + params if params else ''}{reason}", highlight=False)

        yield on_line
        return
    with Live(trials_table((), config), console=out, refresh_per_second=2, transient=True) as live:
        yield lambda trials: live.update(trials_table(trials, config))


def study_lines(result, config) -> list:
    """The closing output: the trial table, the best trial against the baseline, the files."""
    lines = [trials_table(result.trials, config, f"Study '{result.study_name}' ({result.storage})")]
    failed = [t for t in result.trials if t.state == "failed"]
    interrupted = sum(not t.counted for t in failed)
    counts = {s: sum(t.state == s for t in result.trials) for s in ("complete", "pruned", "failed")}
    lines.append(f"[*] {len(result.trials)} trials ({result.ran} run by this command): {counts['complete']} "
                 f"complete, {counts['pruned']} pruned, {counts['failed'] - interrupted} failed"
                 + (f", {interrupted} interrupted (not counted)" if interrupted else "")
                 + (f"; stopped: {result.stopped}" if result.stopped else ""))
    for t in failed:
        lines.append(f"[!] trial {t.number} {'failed' if t.counted else 'interrupted'}: "
                     f"{t.reason or 'no reason recorded'}")
    if result.best is not None:
        params = ", ".join(f"{k} {_value(v)}" for k, v in result.best.params.items()) or "the workspace as it is"
        lines.append(f"[*] Best: trial {result.best.number}, {config.metric} {_value(result.best.value)} ({params})")
    if result.baseline is not None:
        lines.append(f"[*] Baseline (model.py as it is): trial {result.baseline.number}, {config.metric} "
                     f"{_value(result.baseline.value)} ({result.baseline.state})")
    lines.append(f"[*] Results: {result.out_dir} (best.yaml, trials.csv)")
    if result.checkpoint is not None:
        lines.append(f"[*] Best checkpoint: {result.checkpoint}")
    elif result.best is not None:
        lines.append(f"[*] Best checkpoint: {result.best.checkpoint} on {result.best.host}")
    return lines
