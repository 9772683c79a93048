"""``otxlike hpo``: tune the workspace's training hyper-parameters with optuna (docs/hpo.md)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors, print_lines

ORDER = 2.5


def hpo(
    workspace: WorkspaceOpt = None,
    trials: Annotated[Optional[int], typer.Option("--trials", help="Trials in the study, every process together "
                                                  "(hpo.yaml's n_trials).")] = None,
    time_ratio: Annotated[Optional[float], typer.Option(help="Stop starting trials once they took this many times "
                                                        "the baseline training in all (hpo.yaml's time_ratio).")] = None,
    jobs: Annotated[int, typer.Option(help="Trials at once on this machine (worker processes).")] = 1,
    storage: Annotated[Optional[str], typer.Option(help="optuna storage shared by every process of the study: "
                                                   "sqlite:///FILE, postgresql://..., or a journal file path "
                                                   "(default: outputs/hpo/<study>/journal.log).")] = None,
    study_name: Annotated[str, typer.Option(help="The study; the same name on the same storage resumes or "
                                            "joins it.")] = "default",
    apply: Annotated[bool, typer.Option("--apply", help="Write the best values into model.py / data_pipeline.py "
                                        "(the old files go to .backup/).")] = False,
    weights: Annotated[str, typer.Option(help="Pretrained weights of model.py in every trial: auto, none or "
                                              "required (as otxlike train --weights).")] = "auto",
    device: Annotated[str, typer.Option(help="auto or cpu (cpu hides the GPU from every trial).")] = "auto",
) -> None:
    """Search hyper-parameters: an optuna study whose trials are trainings of this workspace.

    hpo.yaml says what is searched (metric, search space, budget, pruner); the best values and
    the best trial's checkpoint land in outputs/<time>_hpo/."""
    out = console()
    with errors():
        from otxlike.errors import OtxlikeError
        from otxlike.hpo.config import read_hpo_config
        from otxlike.workspace.workspace import Workspace

        if device not in ("auto", "cpu"):
            raise OtxlikeError(f"unknown --device '{device}'", "choose auto or cpu")
        ws = Workspace.load(workspace)
        config = read_hpo_config(ws).with_budget(trials, time_ratio)  # before torch or optuna is imported
        if jobs < 1:
            raise OtxlikeError(f"--jobs must be at least 1, got {jobs}")
        from otxlike.engine.hparams import HParams

        HParams(weights=weights).check()
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # workers inherit it
        from otxlike.cli.render.hpo import live_trials, study_lines
        from otxlike.hpo.study import run_study

        with live_trials(out, config) as on_update:
            result = run_study(ws, config, study_name=study_name, storage=storage, jobs=jobs, on_update=on_update,
                               weights=weights)
        print_lines(out, study_lines(result, config))
        if apply:
            if result.best is None:
                raise OtxlikeError("--apply: the study has no complete trial to apply")
            from otxlike.cli.render.lines import updated_lines
            from otxlike.hpo.apply import apply_params, run_flags

            done = apply_params(ws, config, result.best.params)
            print_lines(out, [f"[*] Applied trial {result.best.number}'s values to the workspace",
                              *updated_lines(done.files, done.backup),
                              *(f"[!] {name} is this machine's choice, not model.py's: train with --{name} {value}"
                                for name, value in run_flags(result.best.params).items())])


def register(app: typer.Typer) -> None:
    app.command()(hpo)

