"""``otxlike hpo``: hpo.yaml checks, a real study on the digits, failing trials, shared storage."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import snapshot

ROOT = Path(__file__).resolve().parents[1]


def _write_hpo(ws, **changes) -> dict:
    doc = yaml.safe_load((ws.root / "hpo.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    (ws.root / "hpo.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def test_every_new_workspace_has_an_hpo_yaml_with_the_task_metric(workspace):
    from otxlike.hpo.config import read_hpo_config

    doc = yaml.safe_load((workspace.root / "hpo.yaml").read_text())
    assert doc["metric"] == "accuracy/top1"  # mmpretrain Accuracy's key (tasks.py)
    assert doc["direction"] == "maximize"
    config = read_hpo_config(workspace)
    assert {p.name for p in config.space} == {"lr", "batch_size", "optim_wrapper.optimizer.weight_decay"}
    lr = next(p for p in config.space if p.name == "lr")
    assert lr.log and lr.low < 0.05 < lr.high  # around the template's SGD lr


@pytest.mark.parametrize("changes, message", [
    ({"n_trial": 3}, "unknown key 'n_trial' (did you mean 'n_trials'?"),
    ({"search_space": {"lr": {"type": "loguniform", "low": 0.1, "high": 0.01}}}, "low (0.1) must be below high (0.01)"),
    ({"search_space": {"lr": {"type": "logunifrom", "low": 0.01, "high": 0.1}}}, "unknown type 'logunifrom'"),
    ({"search_space": {"batchsize": {"type": "int", "low": 8, "high": 64}}}, "did you mean 'batch_size'?"),
    ({"search_space": {"batch_size": {"type": "int", "low": 0, "high": 64}}}, "--batch-size must be at least 1"),
    ({"search_space": {"batch_size": {"type": "float", "low": 8, "high": 64}}}, "batch_size takes whole numbers"),
    ({"search_space": {"scheduler": {"type": "categorical", "choices": ["cosine", "linear"]}}},
     "unknown --scheduler 'linear'"),
    ({"pruner": "asha"}, "unknown pruner 'asha'"),
    ({"n_trials": None, "time_ratio": None}, "no budget"),
    ({"time_ratio": 2, "baseline": False}, "time_ratio is measured in baseline trainings"),
])
def test_a_bad_hpo_yaml_is_one_line_exit_2_and_nothing_written(cli, workspace, changes, message):
    _write_hpo(workspace, **changes)
    before = snapshot(workspace.root)
    result = cli("hpo", "-w", workspace.root)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(workspace.root) == before


def test_search_space_checked_against_the_workspace_before_any_trial(cli, workspace):
    """A dotted key the config lacks and an optimizer mmengine does not register are refused
    before a trial (no outputs/)."""
    _write_hpo(workspace, search_space={"optim_wrapper.optimizer.weight_decy": {"type": "float", "low": 0, "high": 1}})
    result = cli("hpo", "-w", workspace.root)
    assert result.exit_code == 2 and "did you mean optim_wrapper.optimizer.weight_decay" in result.output
    _write_hpo(workspace, search_space={"optimizer": {"type": "categorical", "choices": ["SGD", "AdamWW"]}})
    result = cli("hpo", "-w", workspace.root)
    assert result.exit_code == 2 and "search_space.optimizer = 'AdamWW': unknown --optimizer 'AdamWW'" in result.output
    assert not (workspace.root / "outputs").exists()


def _one_epoch(ws) -> None:
    """1 epoch per trial: model.py's max_epochs (the baseline trains model.py as it is)."""
    text = ws.model_py.read_text()
    assert "max_epochs = 15" in text
    ws.model_py.write_text(text.replace("max_epochs = 15", "max_epochs = 1"))


@pytest.mark.slow
def test_a_study_on_the_digits_matches_optuna_storage_and_applies(cli, workspace):
    import optuna

    _one_epoch(workspace)
    _write_hpo(workspace, pruner="none", search_space={
        "lr": {"type": "loguniform", "low": 0.01, "high": 0.1},
        # 0 images per batch: the dataloader refuses it, so every trial but the baseline (model.py's
        # batch of 32) fails, with its reason
        "train_dataloader.batch_size": {"type": "categorical", "choices": [0]}})
    model_before = workspace.model_py.read_text()
    result = cli("hpo", "-w", workspace.root, "--trials", "3", "--weights", "none")
    assert result.exit_code == 0, result.output
    assert workspace.model_py.read_text() == model_before  # trials never touch model.py
    journal = workspace.root / "outputs" / "hpo" / "default" / "journal.log"
    study = optuna.load_study(study_name="default", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    trials = study.get_trials()
    assert len(trials) == 3 and trials[0].user_attrs["baseline"] and trials[0].params["lr"] == 0.05
    [out] = [d for d in (workspace.root / "outputs").iterdir() if d.name.endswith("_hpo")]
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    assert [r["state"] for r in rows] == [t.state.name.lower().replace("fail", "failed") for t in trials]
    for row, trial in zip(rows, trials):
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert float(row["accuracy/top1"]) == pytest.approx(trial.value)
            # the value is the trial run's own validation, in its metrics.json
            run = Path(trial.user_attrs["run_dir"])
            assert run.parent == journal.parent
            import json
            assert json.loads((run / "metrics.json").read_text())["metrics"]["accuracy/top1"] == pytest.approx(trial.value)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed] == [1, 2] and trials[0].state == optuna.trial.TrialState.COMPLETE
    assert "1 complete, 0 pruned, 2 failed" in result.output
    for t in failed:
        assert t.params["train_dataloader.batch_size"] == 0 and t.user_attrs["reason"]
        assert f"trial {t.number} failed: " in result.output
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["best"]["value"] == pytest.approx(study.best_value)
    assert best["best"]["params"] == study.best_params
    assert list(out.glob("best_*.pth"))
    # --apply of the best values: at the source level, old files backed up
    from otxlike.configedit.source import ConfigSource
    from otxlike.hpo.apply import apply_params
    from otxlike.hpo.config import read_hpo_config

    done = apply_params(workspace, read_hpo_config(workspace), {"lr": 0.0123, "train_dataloader.batch_size": 8})
    assert ConfigSource(workspace.model_py.read_text()).literal(("optim_wrapper", "optimizer", "lr")) == 0.0123
    assert ConfigSource(workspace.data_pipeline_py.read_text()).literal(("train_dataloader", "batch_size")) == 8
    assert (done.backup / "model.py").read_text() == model_before
    assert "# Training schedule." in workspace.model_py.read_text()  # comments kept


@pytest.mark.slow
def test_a_study_where_every_trial_fails_exits_2(cli, workspace):
    _one_epoch(workspace)
    _write_hpo(workspace, baseline=False, search_space={
        "train_dataloader.batch_size": {"type": "categorical", "choices": [0]}})
    result = cli("hpo", "-w", workspace.root, "--trials", "2", "--weights", "none")
    assert result.exit_code == 2, result.output
    assert "every trial of study 'default' failed (2 of 2)" in result.output


@pytest.mark.slow
def test_two_processes_share_one_journal_study(workspace, tmp_path):
    """Two ``otxlike hpo`` processes on one journal at the same time: one study, distinct trial
    numbers and parameters, as many trials as the budget and each counted by one process."""
    import optuna

    _one_epoch(workspace)
    _write_hpo(workspace, pruner="none", search_space={"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}})
    journal = tmp_path / "shared.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "otxlike", "hpo", "-w", str(workspace.root), "--trials", "2", "--weights", "none",
           "--storage", str(journal), "--study-name", "shared"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert len({t.params["lr"] for t in trials}) == 2  # none duplicated
    ran = [int(o.split(" run by this command")[0].rsplit("(", 1)[1]) for o in outputs]
    assert ran == [1, 1]  # both processes worked on the one study
    pids = {t.user_attrs["pid"] for t in trials}
    assert pids == {p.pid for p in procs}


def test_a_trial_created_after_another_process_spent_the_budget_never_runs(workspace, tmp_path):
    """n_trials is the study's, whichever process runs them: a trial numbered after n_trials counted
    ones (another process started the last between this one's budget check and its creation)
    ends before training, is neither counted nor shown, and leaves no trial folder."""
    import optuna

    from otxlike.hpo.config import read_hpo_config
    from otxlike.hpo.study import NOT_RUN, Objective, trial_views

    hpo = read_hpo_config(workspace).with_budget(n_trials=2)
    study = optuna.create_study(direction="maximize", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))))
    lr = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    for value in (90.0, 91.0):  # two trials another process ran
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.05}, distributions={"lr": lr}, value=value))
    objective = Objective(workspace, hpo, tmp_path / "study")
    study.optimize(objective, n_trials=1, catch=(Exception,))
    [extra] = study.get_trials()[2:]
    assert extra.state == optuna.trial.TrialState.FAIL and "2 of n_trials 2" in extra.user_attrs[NOT_RUN]
    assert objective.ran == 0 and not (tmp_path / "study").exists()
    assert [t.number for t in trial_views(study)] == [0, 1]


@pytest.mark.slow
def test_jobs_run_one_sqlite_study_in_worker_processes_within_n_trials(workspace, tmp_path):
    """``--jobs 2`` on an RDB storage: two worker processes, every trial in the sqlite study,
    exactly ``--trials`` of them."""
    import optuna

    _one_epoch(workspace)
    _write_hpo(workspace, pruner="none", search_space={"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = subprocess.run([sys.executable, "-m", "otxlike", "hpo", "-w", str(workspace.root), "--trials", "3",
                             "--jobs", "2", "--weights", "none", "--storage", url, "--study-name", "jobs"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = optuna.load_study(study_name="jobs", storage=url).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # trials 0 and 1 start at once, one per worker
    assert "3 complete, 0 pruned, 0 failed" in result.stdout


@pytest.mark.slow
def test_a_killed_study_resumes_from_its_storage_and_reruns_the_baseline(cli, workspace):
    """``kill -9`` while the baseline trains; the same command again marks that trial interrupted
    (not counted), trains the baseline again and completes the budget."""
    import signal
    import time

    import optuna

    _one_epoch(workspace)
    _write_hpo(workspace, pruner="none", search_space={"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}})
    journal = workspace.root / "outputs" / "hpo" / "default" / "journal.log"
    proc = subprocess.Popen([sys.executable, "-m", "otxlike", "hpo", "-w", str(workspace.root), "--trials", "2",
                             "--weights", "none"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trial_0 = workspace.root / "outputs" / "hpo" / "default" / "trial_000"
    deadline = time.monotonic() + 300
    while not list(trial_0.glob("*/vis_data")) and not list(trial_0.glob("*.log")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the baseline trial never started training"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    [killed] = optuna.load_study(study_name="default", storage=storage).get_trials()
    assert killed.state == optuna.trial.TrialState.RUNNING  # what the killed process left

    result = cli("hpo", "-w", workspace.root, "--trials", "2", "--weights", "none")
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="default", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert f"its process {proc.pid} ended" in trials[0].user_attrs["interrupted"]
    assert trials[1].user_attrs["baseline"] and trials[1].params["lr"] == trials[0].params["lr"] == 0.05
    assert "2 complete, 0 pruned, 0 failed, 1 interrupted (not counted)" in result.output
    assert f"trial 0 interrupted: its process {proc.pid} ended" in result.output
    assert "Baseline (model.py as it is): trial 1" in result.output


def test_a_worker_checks_the_budget_and_makes_its_trial_under_the_workspace_lock(workspace, tmp_path):
    """Two processes on one machine never both take the last trial: a worker waits for ASK_LOCK
    before its budget check. While this test holds the lock the worker creates no trial; the test
    spends the budget, releases, and the worker ends with no trial run and none created."""
    import pickle
    import time

    import optuna
    from filelock import FileLock

    from otxlike.hpo.config import read_hpo_config
    from otxlike.hpo.study import ASK_LOCK, study_dir

    hpo = read_hpo_config(workspace).with_budget(n_trials=1)
    journal = tmp_path / "journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="locked", direction="maximize", storage=storage)
    folder = study_dir(workspace, "locked")
    folder.mkdir(parents=True)
    script = ("import pickle, sys\nfrom otxlike.hpo.study import run_worker\n"
              "hpo = pickle.loads(bytes.fromhex(sys.argv[1]))\nprint('start', flush=True)\n"
              f"print('ran', run_worker({str(workspace.root)!r}, {str(journal)!r}, 'locked', hpo, 0, 1, None, 'none'))\n")
    with FileLock(folder / ASK_LOCK):
        proc = subprocess.Popen([sys.executable, "-c", script, pickle.dumps(hpo).hex()], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""})
        assert proc.stdout.readline().strip() == "start"
        time.sleep(3)  # the budget check and the first trial's creation take well under a second
        assert study.get_trials() == []  # the worker waits for the lock
        lr = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.05}, distributions={"lr": lr}, value=90.0))
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and output.strip().endswith("ran 0"), output
    assert len(study.get_trials()) == 1


def test_a_changed_search_space_is_refused_before_any_trial_of_the_stored_study(workspace):
    """optuna cannot change a categorical's choices within a study (its
    ``check_distribution_compatibility``): resuming with other choices is one line, exit 2, and
    the study gets no trial, instead of trials that fail at their first suggestion."""
    import optuna

    from otxlike.hpo.config import read_hpo_config
    from otxlike.hpo.study import create_or_load, storage_location

    _write_hpo(workspace, search_space={"batch_size": {"type": "categorical", "choices": [16, 32, 64]}})
    location = storage_location(workspace, "default", None)
    Path(location).parent.mkdir(parents=True)
    create_or_load(location, "default", read_hpo_config(workspace), {})
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(location))
    study = optuna.load_study(study_name="default", storage=storage)
    study.add_trial(optuna.trial.create_trial(params={"batch_size": 32}, value=90.0, distributions={
        "batch_size": optuna.distributions.CategoricalDistribution([16, 32, 64])}))
    before = len(study.get_trials())
    _write_hpo(workspace, search_space={"batch_size": {"type": "categorical", "choices": [8, 16]}})
    result = subprocess.run([sys.executable, "-m", "otxlike", "hpo", "-w", str(workspace.root), "--trials", "3",
                             "--weights", "none"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)  # a regression loops: fail, not hang
    assert result.returncode == 2, result.stdout + result.stderr
    assert "draws 'batch_size' from choices [16, 32, 64], hpo.yaml from choices [8, 16]" in result.stderr
    assert len(optuna.load_study(study_name="default", storage=storage).get_trials()) == before


def test_a_failed_baseline_ends_a_time_ratio_study_instead_of_running_forever(workspace):
    """``time_ratio`` measures in baseline trainings; a baseline that fails (here: batch size 0,
    which torch's DataLoader refuses) leaves nothing to measure by, so the study stops after it,
    and as every trial failed the command exits 2."""
    text = workspace.data_pipeline_py.read_text()
    assert text.count("batch_size=32") == 1
    workspace.data_pipeline_py.write_text(text.replace("batch_size=32", "batch_size=0"))
    _write_hpo(workspace, n_trials=None, time_ratio=3, search_space={
        "lr": {"type": "loguniform", "low": 0.01, "high": 0.1}})
    result = subprocess.run([sys.executable, "-m", "otxlike", "hpo", "-w", str(workspace.root), "--weights", "none"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "every trial of study 'default' failed (1 of 1)" in result.stdout + result.stderr
    assert "batch_size" in result.stdout + result.stderr


@pytest.mark.parametrize("style", ["variable", "spelled_out"])
def test_apply_of_epochs_moves_the_run_length_and_schedule_and_leaves_precision_to_the_run(workspace, style):
    """``epochs`` lands where model.py sets it: the templates' ``max_epochs`` variable, or an
    mmdet-style ``train_cfg=dict(max_epochs=15)`` with the scheduler's ends spelled out too (as
    ``otxlike train --epochs`` moves them). ``precision`` is not written: mmengine reads the
    optimizer wrapper model.py names on any machine, and the trial's is this machine's."""
    from mmengine.config import Config

    from otxlike.hpo.apply import apply_params, run_flags
    from otxlike.hpo.config import read_hpo_config

    if style == "spelled_out":
        text = workspace.model_py.read_text()
        assert text.count("max_epochs = 15\n") == 1
        text = text.replace("max_epochs = 15\n", "").replace("=max_epochs", "=15")
        workspace.model_py.write_text(text)
    params = {"epochs": 4, "precision": "bf16"}
    apply_params(workspace, read_hpo_config(workspace), params)
    cfg = Config.fromfile(workspace.model_py)
    assert cfg.train_cfg.max_epochs == 4
    assert [(s["end"], s["T_max"]) for s in cfg.param_scheduler if s["type"] == "CosineAnnealingLR"] == [(4, 4)]
    assert ("max_epochs" in cfg) == (style == "variable")
    assert cfg.optim_wrapper.get("type", "OptimWrapper") == "OptimWrapper"
    assert run_flags(params) == {"precision": "bf16"}
