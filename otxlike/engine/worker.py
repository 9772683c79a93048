"""One process of ``otxlike train --nproc / --gpus``: ``python -m otxlike.engine.worker JOB.json``.

torchrun (started by :func:`otxlike.engine.launch.launch_train`) runs this module once per
process with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set. It reads the job file (the
workspace, the run's :class:`~otxlike.engine.hparams.HParams`, ``resume``, the device),
initialises the process group (:func:`otxlike.engine.distributed.init_group`) and calls the same
:func:`otxlike.engine.train.train` as a one-process run. What it tells the launcher goes to files
next to the job file, never to the console:

* ``events.jsonl`` (rank 0 only): one JSON object per line, ``{"progress": {...}}`` for each
  :class:`~otxlike.engine.hooks.Progress` and ``{"result": {...}}`` at the end;
* ``error.<rank>.json``: the exception that ended this rank (type, one-line message, hint, time),
  besides the error file torchrun's ``@record`` writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from otxlike.errors import OtxlikeError, one_line

EVENTS = "events.jsonl"


def error_file(job_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` leaves the exception it stopped on."""
    return job_dir / f"error.{rank}.json"


def _event_writer(path: Path):
    stream = open(path, "a", encoding="utf-8")

    def write(doc: dict) -> None:
        stream.write(json.dumps(doc, default=str) + "\n")
        stream.flush()

    return write


def run(job_file: Path) -> None:
    """Train as the job file says, as one rank of the process group."""
    from otxlike.engine.distributed import init_group, world
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train
    from otxlike.workspace.workspace import Workspace

    job = json.loads(job_file.read_text(encoding="utf-8"))
    init_group(job["device"])
    rank, _ = world()
    write = _event_writer(job_file.parent / EVENTS) if rank == 0 else None
    on_progress = (lambda p: write({"progress": dataclasses.asdict(p)})) if write else None
    hp = HParams.from_json(job["hparams"])
    result = train(Workspace.load(job["workspace"]), on_progress=on_progress, verbose=job["verbose"], hparams=hp,
                   resume=job["resume"])
    if write:
        write({"result": {"run_dir": result.run_dir, "checkpoint": result.checkpoint, "metrics": result.metrics,
                          "weights": [w.to_json() for w in result.weights], "curves": result.curves}})


def main(argv: list[str]) -> None:
    """Entry point: ``argv`` is ``[JOB.json]``. A failure is left in ``error.<rank>.json`` and
    re-raised (torchrun's ``@record``, applied below, reports it with the rank and exit code)."""
    job_file = Path(argv[0])
    try:
        run(job_file)
    except BaseException as exc:
        rank = int(os.environ.get("RANK", "0"))
        doc = {"rank": rank, "time": time.time(), "type": type(exc).__name__,
               "message": exc.message if isinstance(exc, OtxlikeError) else one_line(exc),
               "hint": exc.hint if isinstance(exc, OtxlikeError) else None, "otxlike": isinstance(exc, OtxlikeError)}
        error_file(job_file.parent, rank).write_text(json.dumps(doc), encoding="utf-8")
        raise
    import torch.distributed as dist

    dist.destroy_process_group()  # after a failure the process just ends: a peer may be gone


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    record(main)(sys.argv[1:])
