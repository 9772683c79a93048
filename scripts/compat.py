"""``make compat``: check every backbone of every library on every task, end to end.

For each (backbone, task) pair this runs :func:`otxlike.compat.verify.verify` (swap into a fresh
workspace, train one epoch on tiny digits data, evaluate) in worker processes, appending each
verdict to a JSON-lines results file as it comes, so an interrupted run resumes where it stopped.
At the end it writes the shipped matrix ``otxlike/compat/compat.json`` and ``docs/compatibility.md``.

    python scripts/compat.py                      # everything (hours on 2 cores)
    python scripts/compat.py --library mmdet --task detection --jobs 2
    python scripts/compat.py --render-only        # rebuild the matrix and docs from the results

A check that runs past ``--timeout`` seconds, or kills its worker, is recorded as a failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from otxlike.compat.matrix import MATRIX_FORMAT, MATRIX_PATH, matrix_stack  # noqa: E402
from otxlike.models.features import PROBE_SIZE  # noqa: E402
from otxlike.stack import versions  # noqa: E402
from otxlike.tasks import TASK_SPECS, TASKS  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "compat.jsonl"
DOC = REPO / "docs" / "compatibility.md"
SHORT = {name: spec.short for name, spec in TASK_SPECS.items()}


def _worker_init(threads: int) -> None:
    import warnings

    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)


def _job(kind: str, name: str, task: str | None, root: str) -> dict:
    if kind == "probe":
        from otxlike.catalog.lookup import get_backbone
        from otxlike.catalog.values import default_shapes
        from otxlike.models.features import PROBE_SIZE

        shapes, reason = default_shapes(get_backbone(name), PROBE_SIZE)
        return {"kind": "probe", "backbone": name, "strides": list(shapes.strides) if shapes else None,
                "reason": reason}
    from otxlike.compat.verify import verify

    v = verify(name, task, Path(root))
    return {"kind": "check", "backbone": name, "task": task, "ok": v.ok, "reason": v.reason,
            "seconds": round(v.seconds, 1)}


def _serve(conn, threads: int, max_jobs: int) -> None:
    """Worker loop: run jobs received on ``conn`` until ``max_jobs`` (bounds leaked memory)."""
    _worker_init(threads)
    for _ in range(max_jobs):
        job = conn.recv()
        conn.send(_job(*job))
    conn.close()


class Lane:
    """One worker process run sequentially, replaced when a job times out or kills it.

    Workers are not daemonic (a ``multiprocessing.Pool``'s are), so the data loaders of the checked
    runs may start their own worker processes as in a real ``otxlike train``.
    """

    MAX_JOBS = 40

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.proc = self.conn = None
        self.left = 0

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.threads, self.MAX_JOBS), daemon=False)
        self.proc.start()
        self.left = self.MAX_JOBS

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def run(self, job: tuple, timeout: float) -> dict:
        if self.proc is None or self.left == 0:
            self.stop()
            self._start()
        start = time.perf_counter()
        self.left -= 1
        try:
            self.conn.send(job)
            if self.conn.poll(timeout):
                return self.conn.recv()
            why = f"timed out after {timeout:.0f} s"
        except (EOFError, OSError) as exc:  # the worker died (segfault, out of memory)
            why = f"the check crashed its process ({type(exc).__name__})"
        self.stop()
        kind, name, task, _ = job
        if kind == "probe":
            return {"kind": "probe", "backbone": name, "strides": None, "reason": why}
        return {"kind": "check", "backbone": name, "task": task, "ok": False, "reason": why,
                "seconds": round(time.perf_counter() - start, 1)}


def _read_results() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(libraries: list[str], tasks: list[str], jobs: int, timeout: float, names: list[str] | None,
        redo: bool = False) -> None:
    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider

    done = {(r["kind"], r["backbone"], r.get("task")) for r in _read_results()
            if not (redo and names and r["backbone"] in names)}  # --redo: check them again (the later line wins)
    backbones = [s.name for lib in libraries for s in indexed_backbones(provider(lib))[0]]
    if names:
        backbones = [b for b in backbones if b in names]
    from otxlike.compat.verify import sample_data

    root = Path(tempfile.mkdtemp(prefix="otxlike-compat-"))
    for task in tasks:  # made once here: workers running at the same time would race to make it
        sample_data(task, root)
    todo = [("probe", b, None, str(root)) for b in backbones if ("probe", b, None) not in done]
    todo += [("check", b, t, str(root)) for b in backbones for t in tasks if ("check", b, t) not in done]
    print(f"{len(todo)} jobs to run ({len(done)} already in {RESULTS.relative_to(REPO)}), {jobs} worker(s)", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    lanes = [Lane(threads) for _ in range(jobs)]
    free = list(lanes)
    counter = iter(range(1, len(todo) + 1))

    def work(job):
        lane = free.pop()
        try:
            result = lane.run(job, timeout)
        finally:
            free.append(lane)
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
        status = "" if result["kind"] == "probe" else ("pass" if result["ok"] else f"FAIL {result['reason'][:120]}")
        print(f"[{next(counter)}/{len(todo)}] {result['kind']} {job[1]} {job[2] or ''} {status}", flush=True)

    with ThreadPoolExecutor(jobs) as ex:
        list(ex.map(work, todo))
    for lane in lanes:
        lane.stop()


def build_matrix(results: list[dict]) -> dict:
    """The shipped matrix from the results file (a later line wins over an earlier one)."""
    backbones: dict[str, dict] = {}
    for r in results:
        entry = backbones.setdefault(r["backbone"], {"strides": None, "tasks": {}})
        if r["kind"] == "probe":
            entry["strides"] = r["strides"]
        else:
            entry["tasks"][r["task"]] = {"ok": r["ok"], "reason": r["reason"], "seconds": r["seconds"]}
    return {"format": MATRIX_FORMAT, "versions": versions(matrix_stack()),
            "backbones": dict(sorted(backbones.items()))}


def multi_scale(entry: dict) -> bool:
    """At least three distinct output strides with default arguments (what an FPN can use)."""
    return len(set(entry["strides"] or ())) >= 3


def render(matrix: dict, totals: dict[str, int]) -> str:
    """docs/compatibility.md: the summary per library and task, top reasons, and every verdict.

    ``totals`` is the number of backbones each library has (the pairs the matrix lacks were not
    checked, and ``find --task`` does not list them).
    """
    libs = sorted({n.split(".", 1)[0] for n in matrix["backbones"]})
    lines = ["# Backbone compatibility", "",
             "Generated by `make compat` (`scripts/compat.py`); do not edit by hand. For each task, every backbone "
             "was swapped into a fresh workspace of the task's default template with the values "
             "`otxlike build --backbone` writes, trained one epoch on tiny digits data and evaluated, on the CPU "
             "(a pass is *verified end to end*: the pieces fit; see [the glossary](glossary.md)). "
             "`otxlike find --task TASK` lists the backbones that passed; `otxlike find --all` shows the failures too.",
             "", "Versions: " + ", ".join(f"{k} {v}" for k, v in matrix["versions"].items() if v), "",
             "## Summary", "",
             "Passed / checked per library and task. *In library*: the backbones `find` lists; *Checked*: those in "
             "this matrix (pairs not checked are not listed by `find --task`). *Multi-scale* backbones give at least "
             f"three distinct output strides with their default arguments at {PROBE_SIZE}x{PROBE_SIZE}.", "",
             "| Library | In library | Checked | Multi-scale | " + " | ".join(TASKS) + " | " +
             " | ".join(f"{SHORT[t]} (multi-scale)" for t in TASKS) + " |",
             "|---" * (4 + 2 * len(TASKS)) + "|"]

    def rate(entries, task):
        checked = [e for e in entries if task in e["tasks"]]
        return f"{sum(e['tasks'][task]['ok'] for e in checked)}/{len(checked)}" if checked else "-"

    for lib in libs:
        entries = [e for n, e in matrix["backbones"].items() if n.split(".", 1)[0] == lib]
        ms = [e for e in entries if multi_scale(e)]
        lines.append(f"| {lib} | {totals.get(lib, '?')} | {len(entries)} | {len(ms)} | " + " | ".join(rate(entries, t) for t in TASKS) +
                     " | " + " | ".join(rate(ms, t) for t in TASKS) + " |")
    lines += ["", "## Most common failure reasons", ""]
    for task in TASKS:
        reasons = Counter(_kind(e["tasks"][task]["reason"]) for e in matrix["backbones"].values()
                          if task in e["tasks"] and not e["tasks"][task]["ok"])
        top = "; ".join(f"{why} ({n})" for why, n in reasons.most_common(4)) or "none"
        lines.append(f"- **{task}**: {top}")
    for lib in libs:
        lines += ["", f"## {lib}", "", "| Backbone | Strides | " + " | ".join(TASKS) + " |",
                  "|---" * (2 + len(TASKS)) + "|"]
        for name, e in matrix["backbones"].items():
            if name.split(".", 1)[0] != lib:
                continue
            cells = []
            for t in TASKS:
                v = e["tasks"].get(t)
                cells.append("" if v is None else "pass" if v["ok"] else "FAIL: " + v["reason"].replace("|", "/")[:160])
            strides = ", ".join(map(str, e["strides"])) if e["strides"] else "-"
            lines.append(f"| {name} | {strides} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _kind(reason: str) -> str:
    """A failure reason without its backbone-specific details, to count alike failures."""
    if "needs input" in reason:
        return "required arguments without a default"
    if "has no output at stride" in reason:
        return "missing strides the template's neck/heads use"
    if "timed out" in reason:
        return "timed out"
    step, _, rest = reason.partition(": ")
    first = rest.split(":", 1)[0] if rest.count(":") else rest[:60]
    return f"{step}: {first.strip()[:80]}"


def main() -> None:
    from otxlike.catalog.providers import PROVIDERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", action="append", choices=list(PROVIDERS), help="default: all")
    parser.add_argument("--task", action="append", choices=list(TASKS), help="default: all")
    parser.add_argument("--backbone", action="append", help="only these full names")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per check")
    parser.add_argument("--redo", action="store_true", help="check the --backbone names again")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if not args.render_only:
        run(args.library or list(PROVIDERS), args.task or list(TASKS), args.jobs, args.timeout, args.backbone,
            args.redo)
    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider

    matrix = build_matrix(_read_results())
    libraries = sorted({n.split(".", 1)[0] for n in matrix["backbones"]})
    totals = {lib: len(indexed_backbones(provider(lib))[0]) for lib in libraries}
    MATRIX_PATH.write_text(json.dumps(matrix, indent=1) + "\n", encoding="utf-8")
    DOC.write_text(render(matrix, totals), encoding="utf-8")
    print(f"wrote {MATRIX_PATH.relative_to(REPO)} and {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
