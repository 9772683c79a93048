"""``otxlike train --nproc N / --gpus N|IDS [--nnodes ...]``: one training run on several processes,
started by torchrun.

:func:`launch_train` writes a job file and hands torchrun's own command line to
``torch.distributed.run.parse_args`` / ``run`` (``torch/distributed/run.py``: the elastic agent,
its rendezvous and its failure report, ``ChildFailedError``), in this process; torchrun starts
``python -m otxlike.engine.worker JOB.json`` once per process (:mod:`otxlike.engine.worker`),
which calls the same :func:`otxlike.engine.train.train` as a one-process run. Nothing re-runs or
edits ``sys.argv``.

The workers' console output goes to log files next to the job file (``--redirects 3``, unless
``verbose``); rank 0 sends its progress through ``events.jsonl``, which this process reads while
the run goes and hands to ``on_progress``, so progress comes from rank 0 only. A worker that dies
ends the run: the others are stopped by torchrun, the error names the rank, and the run folder is
removed (nothing trained yet) or kept and marked failed (:func:`otxlike.engine.train.failed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from otxlike.engine.hooks import Progress
from otxlike.engine.hparams import HParams
from otxlike.engine.runner import RunResult
from otxlike.engine.worker import EVENTS, error_file
from otxlike.errors import OtxlikeError, one_line
from otxlike.workspace.workspace import Workspace


@dataclasses.dataclass(frozen=True)
class Launch:
    """How many processes a run has and where (torchrun's options, ``torch/distributed/run.py``).

    Attributes:
        nproc: CPU processes on this machine (gloo); None unless ``--nproc`` is given.
        gpus: ``"N"`` (the first N GPUs torch sees) or ``"0,1"`` (those GPUs), one process each
            (NCCL); None unless ``--gpus`` is given.
        nnodes: Machines taking part (torchrun ``--nnodes``), each running the same command.
        node_rank: This machine's place, 0 .. nnodes-1 (``--node-rank``, static rendezvous).
        master_addr: Address of the machine with node rank 0 (``--master-addr``).
        master_port: Its free TCP port (``--master-port``); on one machine torchrun picks one.
        rdzv_endpoint: ``HOST:PORT`` of a c10d rendezvous (``--rdzv-endpoint``) instead of
            master address and node rank: torchrun then numbers the machines itself.
    """

    nproc: int | None = None
    gpus: str | None = None
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    rdzv_endpoint: str | None = None

    @property
    def wanted(self) -> bool:
        """True if the run is to be started through torchrun (any process or machine flag)."""
        return self.nproc is not None or self.gpus is not None or self.nnodes > 1

    def check(self, hp: HParams) -> None:
        """Refuse bad numbers and combinations, before torch is imported.

        Raises:
            OtxlikeError: One line naming the flag and what to give instead.
        """
        if self.nproc is not None and self.gpus is not None:
            raise OtxlikeError("--nproc and --gpus both given", "--nproc N runs CPU processes, --gpus N one "
                               "process per GPU: choose one")
        if self.nproc is not None and self.nproc < 1:
            raise OtxlikeError(f"--nproc must be at least 1, got {self.nproc}")
        if self.gpus is not None:
            self.gpu_ids(None)  # the form only; the count is checked against the machine later
        if self.nnodes < 1:
            raise OtxlikeError(f"--nnodes must be at least 1, got {self.nnodes}")
        if not 0 <= self.node_rank < self.nnodes:
            raise OtxlikeError(f"--node-rank must be between 0 and {self.nnodes - 1} (--nnodes {self.nnodes}), "
                               f"got {self.node_rank}")
        if self.master_port is not None and not 0 < self.master_port < 65536:
            raise OtxlikeError(f"--master-port must be a TCP port (1-65535), got {self.master_port}")
        if self.rdzv_endpoint is not None:
            if self.master_addr is not None or self.node_rank:
                raise OtxlikeError("--rdzv-endpoint replaces --master-addr and --node-rank",
                                   "give either --rdzv-endpoint HOST:PORT, or --master-addr, --master-port and "
                                   "--node-rank")
            if not re.fullmatch(r"[^\s:]+:\d{1,5}", self.rdzv_endpoint):
                raise OtxlikeError(f"--rdzv-endpoint takes HOST:PORT, got '{self.rdzv_endpoint}'",
                                   "e.g. --rdzv-endpoint node0.example.org:29400")
        if self.nnodes > 1 and self.master_addr is None and self.rdzv_endpoint is None:
            raise OtxlikeError(f"--nnodes {self.nnodes} needs the address of the first machine",
                               "add --master-addr HOST --master-port PORT --node-rank R (R = 0 on that machine), "
                               "or --rdzv-endpoint HOST:PORT")
        if self.nproc is not None and hp.device == "cuda":
            raise OtxlikeError("--nproc runs CPU processes; --device cuda asks for a GPU", "use --gpus N for GPUs")
        if self.gpus is not None and hp.device == "cpu":
            raise OtxlikeError("--gpus runs one process per GPU; --device cpu asks for none",
                               "use --nproc N for CPU processes")
        if self.nproc is not None and hp.precision == "fp16":
            raise OtxlikeError("--precision fp16 needs CUDA; --nproc runs CPU processes",
                               "use --precision bf16 (CPU autocast) or fp32, or --gpus N")

    def gpu_ids(self, count: int | None) -> list[int]:
        """The GPU indexes of ``--gpus`` (``"2"``: 0 and 1; ``"0,2"``: 0 and 2), checked against the
        ``count`` torch sees (None: the form only).

        Raises:
            OtxlikeError: Not a count or a list of indexes, or more / other GPUs than there are.
        """
        text = (self.gpus or "").replace(" ", "")
        if re.fullmatch(r"\d+", text):
            ids = list(range(int(text)))
            if not ids:
                raise OtxlikeError("--gpus must be at least 1, got 0", "use --nproc N for CPU processes")
        elif re.fullmatch(r"\d+(,\d+)+", text):
            ids = [int(i) for i in text.split(",")]
            if len(set(ids)) != len(ids):
                raise OtxlikeError(f"--gpus '{self.gpus}' names a GPU twice")
        else:
            raise OtxlikeError(f"--gpus takes a count or GPU indexes, got '{self.gpus}'", "e.g. --gpus 2 or --gpus 0,1")
        if count is None:
            return ids
        if count == 0:
            raise OtxlikeError(f"--gpus {self.gpus}: torch sees no CUDA device here",
                               "use --nproc N to train on CPU processes")
        if max(ids) >= count:
            raise OtxlikeError(f"--gpus {self.gpus}: torch sees {count} CUDA device{'s' * (count > 1)} here "
                               f"(indexes 0-{count - 1})", f"use at most --gpus {count}")
        return ids


class WorkerFailed(Exception):
    """A worker process ended the run (its rank, how it ended)."""


def torchrun_args(launch: Launch, nproc: int, job_file: Path, log_dir: Path | None) -> list[str]:
    """torchrun's command line for ``launch`` (``torch/distributed/run.py``'s options; on one
    machine without a port it picks a free one: its c10d rendezvous on ``localhost:0``)."""
    args = [f"--nproc-per-node={nproc}", f"--nnodes={launch.nnodes}", "--max-restarts=0"]
    if launch.rdzv_endpoint is not None:
        args += ["--rdzv-backend=c10d", f"--rdzv-endpoint={launch.rdzv_endpoint}"]
    else:
        args.append(f"--node-rank={launch.node_rank}")
        if launch.master_addr is not None:
            args.append(f"--master-addr={launch.master_addr}")
        if launch.master_port is not None:
            args.append(f"--master-port={launch.master_port}")
    if log_dir is not None:
        args += [f"--log-dir={log_dir}", "--redirects=3"]
    return [*args, "--module", "otxlike.engine.worker", str(job_file)]


@contextlib.contextmanager
def _environ(**values: str):
    """Set environment variables for the workers (torchrun copies this process's environment)."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _quiet_torchrun(verbose: bool):
    """torchrun's own log lines (its OMP_NUM_THREADS banner, its failure report) stay off the
    console unless ``verbose``: the run's progress and its one-line error say what happened."""
    if verbose:
        yield
        return
    logger = logging.getLogger("torch.distributed")
    loggers = [logger, *(l for name, l in logging.root.manager.loggerDict.items()
                         if name.startswith("torch.distributed.") and isinstance(l, logging.Logger))]
    levels = [(l, l.level) for l in loggers]
    for l in loggers:
        l.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for l, level in levels:
            l.setLevel(level)


class _Events:
    """Reads rank 0's ``events.jsonl`` while the run goes, in a thread: each progress step goes to
    ``on_progress``; the run folder, the step count, the last validation and the result are kept."""

    def __init__(self, path: Path, on_progress: Callable[[Progress], None] | None):
        self.path, self.on_progress = path, on_progress
        self.run_dir: Path | None = None
        self.steps, self.metrics, self.result = 0, {}, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._offset = 0
        self.error: BaseException | None = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._read()  # the last lines
        return False

    def _follow(self) -> None:
        while not self._stop.wait(0.2):
            self._read()

    def _read(self) -> None:
        if self.error is not None or not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as f:
            f.seek(self._offset)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break  # not yet written whole
                self._offset += len(line.encode("utf-8"))
                self._handle(json.loads(line))

    def _handle(self, doc: dict) -> None:
        if "result" in doc:
            self.result = doc["result"]
            return
        p = doc["progress"]
        progress = Progress(**{**p, "run_dir": Path(p["run_dir"]) if p.get("run_dir") else None})
        if progress.phase == "start":
            self.run_dir = progress.run_dir
        elif progress.phase == "train":
            self.steps += 1
        elif progress.phase == "val":
            self.metrics = progress.metrics or {}
        if self.on_progress is not None:
            try:
                self.on_progress(progress)
            except BaseException as exc:  # shown after the run; the run is not stopped by the display
                self.error = exc


def _cause(exc, job_dir: Path) -> tuple[int, dict]:
    """The failure that ended the run and its record: ``(rank, {"type", "message", "hint",
    "otxlike", "signal"})``.

    A rank that died without leaving ``error.<rank>.json`` (a signal, ``os._exit``, the OOM
    killer) caused the others to fail, unless it got SIGTERM (torchrun's agent stops the other
    workers with it once one has failed); else the earliest exception recorded (a peer's exit makes
    the others fail a moment later with a connection error).
    """
    records = {}
    for rank, failure in exc.failures.items():
        path = error_file(job_dir, rank)
        if path.is_file():
            records[rank] = json.loads(path.read_text(encoding="utf-8"))
        else:
            how = (f"killed by signal {signal.Signals(-failure.exitcode).name}" if failure.exitcode < 0
                   else f"exited with code {failure.exitcode}")
            records[rank] = {"type": None, "message": how, "hint": None, "otxlike": False, "time": None,
                             "stopped": failure.exitcode == -signal.SIGTERM}
    silent = sorted(r for r, rec in records.items() if rec["time"] is None and not rec["stopped"])
    raised = sorted((rec["time"], r) for r, rec in records.items() if rec["time"] is not None)
    rank = silent[0] if silent else raised[0][1] if raised else min(records)
    return rank, records[rank]


def _worker_log(log_dir: Path | None, local_rank: int) -> Path | None:
    if log_dir is None:
        return None
    logs = sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log"))
    return logs[-1] if logs else None


def launch_train(ws: Workspace, launch: Launch, on_progress: Callable[[Progress], None] | None = None,
                 verbose: bool = False, hparams: HParams | None = None, resume: bool = False) -> RunResult:
    """Train the workspace's model on ``launch``'s processes: :func:`otxlike.engine.train.train`
    in each, DDP through mmengine's ``launcher='pytorch'``.

    Rank 0 writes the run folder as a one-process run does; ``hparams.yaml`` adds
    ``world_size``, ``global_batch`` (= world size x the per-process ``batch_size``) and
    ``lr_scaled`` (:func:`otxlike.engine.distributed.distribute`). Every machine of a
    several-machine run must see the workspace and the data at the same path (a shared disk).

    Args:
        ws: The workspace.
        launch: The processes (:class:`Launch`, checked here again).
        on_progress: Rank 0's :class:`~otxlike.engine.hooks.Progress`, called in a thread of
            this process while the run goes.
        verbose: Show mmengine's and torchrun's log lines and the workers' output.
        hparams: As for :func:`~otxlike.engine.train.train`.
        resume: As for :func:`~otxlike.engine.train.train`.

    Returns:
        Rank 0's :class:`~otxlike.engine.runner.RunResult` (on a machine without rank 0: the run
        folder only).

    Raises:
        OtxlikeError: Bad flags or ``--gpus`` more than the machine has (before any process
            starts), what a worker raised (the same message as a one-process run), or a worker
            that died: its rank and how, the run folder removed or marked failed.
    """
    import torch
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    from otxlike.engine.train import failed
    from otxlike.engine.weights import WeightsStatus

    hp = hparams or HParams()
    hp.check()
    launch.check(hp)
    if launch.gpus is not None:
        ids = launch.gpu_ids(torch.cuda.device_count())
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        names = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        env, device, nproc = {"CUDA_VISIBLE_DEVICES": ",".join(names[i] for i in ids)}, "cuda", len(ids)
    else:
        env, device, nproc = {"CUDA_VISIBLE_DEVICES": ""}, "cpu", launch.nproc or 1
    start = time.perf_counter()
    job_dir = Path(tempfile.mkdtemp(prefix="otxlike-train-"))
    log_dir = None if verbose else job_dir / "logs"
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps({"workspace": str(ws.root.resolve()), "device": device, "verbose": verbose,
                                    "resume": resume, "hparams": hp.to_json()}),
                        encoding="utf-8")
    args = torchrun.parse_args(torchrun_args(launch, nproc, job_file, log_dir))
    events = _Events(job_dir / EVENTS, on_progress)
    try:
        with _environ(**env), _quiet_torchrun(verbose), events:
            torchrun.run(args)
    except ChildFailedError as exc:
        rank, record = _cause(exc, job_dir)
        if record["otxlike"] and events.run_dir is None:  # refused before training (rank 0 cleaned up)
            shutil.rmtree(job_dir, ignore_errors=True)
            raise OtxlikeError(record["message"], record["hint"]) from None
        what = f"{record['type']}: {record['message']}" if record["type"] else record["message"]
        log = _worker_log(log_dir, exc.failures[rank].local_rank)
        reason = WorkerFailed(f"rank {rank} of {args.nproc_per_node * launch.nnodes} failed: {one_line(what, 300)}"
                              + (f" (its log: {log})" if log else ""))
        if events.run_dir is not None:
            failed(ws, events.run_dir, reason, events.steps, events.metrics, resume)  # raises
        raise OtxlikeError(str(reason), "--debug or --verbose shows more; a run that could not start left "
                           "no run folder") from None
    except RendezvousError as exc:
        raise OtxlikeError(f"the {launch.nnodes} machines did not meet: {type(exc).__name__}: {one_line(exc, 200)}",
                           "start the same command on every machine, with --master-addr / --master-port (or "
                           "--rdzv-endpoint) reachable from all of them") from None
    except (SignalException, KeyboardInterrupt) as exc:  # Ctrl-C: torchrun stops the workers, then raises
        if events.run_dir is not None:
            failed(ws, events.run_dir, KeyboardInterrupt(), events.steps, events.metrics, resume)
        raise KeyboardInterrupt from exc
    shutil.rmtree(job_dir, ignore_errors=True)
    if events.error is not None:
        raise events.error
    done = events.result or {}
    weights = tuple(WeightsStatus(w["module"], w["checkpoint"], w["url"], Path(w["cache"]), w["loaded"], w["reason"],
                                  w["fetch"]) for w in done.get("weights", []))
    path = lambda key: Path(done[key]) if done.get(key) else None  # noqa: E731
    return RunResult(path("run_dir") or events.run_dir, path("checkpoint"), done.get("metrics", {}),
                     time.perf_counter() - start, weights, path("curves"))
