"""``make compat``: check every backbone of every library on every task, in two tiers.

``--tier verified`` (the default): for each (backbone, task) pair this runs
:func:`otxlike.compat.verify.verify` (swap into a fresh workspace, train one epoch on tiny digits
data, evaluate). ``--tier fits``: for each backbone, :func:`otxlike.compat.fits.check_fits` on
every task at once (built with the values ``build --backbone`` writes, one forward at each
template's input size, strides and channels the template's neck/heads take; seconds each).
Checks run in worker processes, each verdict appended to a JSON-lines results file as it comes
(``compat.jsonl``, ``fits.jsonl``), so an interrupted run resumes where it stopped. At the end
it writes the shipped matrix ``otxlike/compat/compat.json`` and ``docs/compatibility.md`` from
both files.

    python scripts/compat.py                      # everything verified (hours on 2 cores)
    python scripts/compat.py --library mmdet --task detection --jobs 2
    nice -n 19 python scripts/compat.py --tier fits --timeout 120   # every backbone, fits
    python scripts/compat.py --library timm --library mmpretrain --stratified 1   # verified: a sample of what fits
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
FITS_RESULTS = REPO / "benchmarks" / "results" / "fits.jsonl"
DOC = REPO / "docs" / "compatibility.md"
SHORT = {name: spec.short for name, spec in TASK_SPECS.items()}


def _worker_init(threads: int, memory_gb: float | None = None) -> None:
    import warnings

    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    if memory_gb:  # a backbone too large for the machine fails its check instead of the machine
        import resource

        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


#: The tasks' template contexts of the fits tier, made by the parent before the workers fork.
CONTEXTS: list = []


def _job(kind: str, name: str, task: str | None, root: str) -> dict:
    if kind == "fits":
        from otxlike.compat.fits import check_fits

        start = time.perf_counter()
        verdicts = check_fits(name, CONTEXTS)
        probe = [f.strides for c, f in zip(CONTEXTS, verdicts.values()) if c.input_size == PROBE_SIZE and f.strides]
        return {"kind": "fits", "backbone": name, "seconds": round(time.perf_counter() - start, 1),
                "strides": list(probe[0]) if probe else None,
                "tasks": {t: {"ok": f.ok, "reason": f.reason} for t, f in verdicts.items()}}
    if kind == "probe":
        from otxlike.catalog.lookup import get_backbone
        from otxlike.catalog.values import default_shapes

        shapes, reason = default_shapes(get_backbone(name), PROBE_SIZE)
        return {"kind": "probe", "backbone": name, "strides": list(shapes.strides) if shapes else None,
                "reason": reason}
    from otxlike.compat.verify import verify

    v = verify(name, task, Path(root))
    return {"kind": "check", "backbone": name, "task": task, "ok": v.ok, "reason": v.reason,
            "seconds": round(v.seconds, 1)}


def _serve(conn, threads: int, max_jobs: int, memory_gb: float | None) -> None:
    """Worker loop: run jobs received on ``conn`` until ``max_jobs`` (bounds leaked memory)."""
    _worker_init(threads, memory_gb)
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

    def __init__(self, threads: int, max_jobs: int = MAX_JOBS, memory_gb: float | None = None) -> None:
        self.threads = threads
        self.max_jobs = max_jobs
        self.memory_gb = memory_gb
        self.proc = self.conn = None
        self.left = 0

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.threads, self.max_jobs, self.memory_gb),
                                daemon=False)
        self.proc.start()
        self.left = self.max_jobs

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
                result = self.conn.recv()
                if "can't allocate memory" in json.dumps(result):  # its heap is spent or torn: a
                    self.stop()                                  # fresh worker for the next job
                return result
            why = f"timed out after {timeout:.0f} s"
        except (EOFError, OSError) as exc:  # the worker died (segfault, out of memory)
            why = f"the check crashed its process ({type(exc).__name__})"
        self.stop()
        kind, name, task, _ = job
        if kind == "fits":
            return {"kind": "fits", "backbone": name, "seconds": round(time.perf_counter() - start, 1),
                    "tasks": {c.task: {"ok": False, "reason": why} for c in CONTEXTS}}
        if kind == "probe":
            return {"kind": "probe", "backbone": name, "strides": None, "reason": why}
        return {"kind": "check", "backbone": name, "task": task, "ok": False, "reason": why,
                "seconds": round(time.perf_counter() - start, 1)}


def _read_results(path: Path = RESULTS) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stratified(backbones: list[str], tasks: list[str], per_family: int = 1) -> list[tuple[str, str]]:
    """The (backbone, task) pairs a ``--stratified`` verified run checks: those that fit (in
    ``fits.jsonl``) and were not checked end to end, timm's thinned to ``per_family`` per model
    family and task, those checked before included (the family: the module of ``timm.models`` that
    defines it, ``resnet``, ``convnext``, ...; the first names in timm's order, models with a
    word of :data:`BIG` last)."""
    import timm

    fits = {}
    for r in _read_results(FITS_RESULTS):
        fits[r["backbone"]] = r["tasks"]
    verified = {(r["backbone"], r["task"]) for r in _read_results() if r["kind"] == "check"}
    family = {f"timm.{m}": mod for mod in timm.list_modules() for m in timm.list_models(module=mod)}
    pairs, taken = [], Counter((family[b], t) for b, t in verified if b in family)  # a checked family is sampled
    for task in tasks:
        for name in sorted(backbones, key=_big_last):
            if (name, task) in verified or not fits.get(name, {}).get(task, {}).get("ok"):
                continue
            if name in family:
                if taken[(family[name], task)] >= per_family:
                    continue
                taken[(family[name], task)] += 1
            pairs.append((name, task))
    return pairs


def run(libraries: list[str], tasks: list[str], jobs: int, timeout: float, names: list[str] | None,
        redo: bool = False, memory_gb: float | None = None, per_family: int | None = None) -> None:
    """The verified tier: a probe per backbone and a check per (backbone, task) pair not done yet;
    with ``per_family``, only the pairs of :func:`stratified`."""
    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider

    done = {(r["kind"], r["backbone"], r.get("task")) for r in _read_results()
            if not (redo and names and r["backbone"] in names)}  # --redo: check them again (the later line wins)
    backbones = [s.name for lib in libraries for s in indexed_backbones(provider(lib))[0]]
    if names:
        backbones = [b for b in backbones if b in names]
    pairs = stratified(backbones, tasks, per_family) if per_family else [(b, t) for b in backbones for t in tasks]
    backbones = list(dict.fromkeys(b for b, _ in pairs))
    from otxlike.compat.verify import sample_data

    root = Path(tempfile.mkdtemp(prefix="otxlike-compat-"))
    for task in tasks:  # made once here: workers running at the same time would race to make it
        sample_data(task, root)
    todo = [("probe", b, None, str(root)) for b in backbones if ("probe", b, None) not in done]
    todo += [("check", b, t, str(root)) for b, t in pairs if ("check", b, t) not in done]
    _run_jobs(todo, len(done), RESULTS, jobs, timeout, memory_gb=memory_gb)


def run_fits(libraries: list[str], tasks: list[str], jobs: int, timeout: float, names: list[str] | None,
             redo: bool = False, memory_gb: float | None = None, per_family: int | None = None) -> None:
    """The fits tier: one job per backbone, checked on every task of ``tasks`` at once."""
    import torch

    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider
    from otxlike.compat.fits import task_context

    done = {r["backbone"] for r in _read_results(FITS_RESULTS) if not (redo and names and r["backbone"] in names)
            and not _inconclusive(r)}  # a check that timed out or ran out of memory is tried again
    backbones = [s.name for lib in libraries for s in indexed_backbones(provider(lib))[0]]
    if names:
        backbones = [b for b in backbones if b in names]
    root = Path(tempfile.mkdtemp(prefix="otxlike-fits-"))
    torch.set_num_threads(1)  # no thread pool in the parent: the workers fork from it
    CONTEXTS[:] = [task_context(t, root) for t in tasks]
    todo = [("fits", b, None, str(root)) for b in sorted(backbones, key=_big_last) if b not in done]
    _run_jobs(todo, len(done), FITS_RESULTS, jobs, timeout, max_jobs=100, memory_gb=memory_gb)


#: Words in the names of timm's largest models (hundreds of millions to billions of parameters):
#: checked last, so that an interrupted run has checked the many small ones first.
BIG = ("large", "huge", "giant", "gigantic", "enormous", "xxlarge", "so400m", "so150m", "_1b", "_3b", "_7b", "_6b",
       "448", "518", "560", "384")


def _inconclusive(result: dict) -> bool:
    """A fits result that says nothing about the backbone: its check timed out, crashed its worker
    or hit the worker's memory limit (on a busy machine; a later run tries it again)."""
    reasons = [v["reason"] or "" for v in result["tasks"].values()]
    return any(w in r for r in reasons for w in ("timed out after", "crashed its process", "can't allocate memory"))


def _big_last(name: str) -> int:
    """Scheduling order of the fits run: 1 for a name with a word of :data:`BIG`, else 0 (a stable sort)."""
    return int(any(word in name for word in BIG))


def _run_jobs(todo: list[tuple], done: int, results: Path, jobs: int, timeout: float, max_jobs: int = Lane.MAX_JOBS,
              memory_gb: float | None = None) -> None:
    """Run ``todo`` on ``jobs`` worker lanes, appending each result to ``results`` as it comes."""
    print(f"{len(todo)} jobs to run ({done} already in {results.relative_to(REPO)}), {jobs} worker(s)", flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    lanes = [Lane(threads, max_jobs, memory_gb) for _ in range(jobs)]
    free = list(lanes)
    counter = iter(range(1, len(todo) + 1))

    def work(job):
        lane = free.pop()
        try:
            result = lane.run(job, timeout)
        finally:
            free.append(lane)
        with results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
        if result["kind"] == "fits":
            status = f"{result['seconds']} s " + " ".join(
                f"{SHORT[t]}:{'ok' if v['ok'] else 'no'}" for t, v in result["tasks"].items())
        else:
            status = "" if result["kind"] == "probe" else ("pass" if result["ok"] else f"FAIL {result['reason'][:120]}")
        print(f"[{next(counter)}/{len(todo)}] {result['kind']} {job[1]} {job[2] or ''} {status}", flush=True)

    with ThreadPoolExecutor(jobs) as ex:
        list(ex.map(work, todo))
    for lane in lanes:
        lane.stop()


def build_matrix(results: list[dict], fits: list[dict] = ()) -> dict:
    """The shipped matrix from the verified and the fits results files (in each, a later line
    wins over an earlier one)."""
    backbones: dict[str, dict] = {}
    for r in results:
        entry = backbones.setdefault(r["backbone"], {"strides": None, "tasks": {}, "fits": {}})
        if r["kind"] == "probe":
            entry["strides"] = r["strides"]
        else:
            entry["tasks"][r["task"]] = {"ok": r["ok"], "reason": r["reason"], "seconds": r["seconds"]}
    for r in fits:
        if _inconclusive(r):  # no verdict: not checked
            continue
        entry = backbones.setdefault(r["backbone"], {"strides": None, "tasks": {}, "fits": {}})
        entry["fits"].update({t: {"ok": v["ok"], "reason": v["reason"]} for t, v in r["tasks"].items()})
        if entry["strides"] is None and r.get("strides"):
            entry["strides"] = r["strides"]
    return {"format": MATRIX_FORMAT, "versions": versions(matrix_stack()),
            "backbones": dict(sorted(backbones.items()))}


def multi_scale(entry: dict) -> bool:
    """At least three distinct output strides with default arguments (what an FPN can use)."""
    return len(set(entry["strides"] or ())) >= 3


def render(matrix: dict, totals: dict[str, int]) -> str:
    """docs/compatibility.md: the summaries per library and task (both tiers), top reasons, how
    the tiers agree, and every verdict.

    ``totals`` is the number of backbones each library has (the pairs the matrix lacks were not
    checked, and ``find --task`` does not list them).
    """
    libs = sorted({n.split(".", 1)[0] for n in matrix["backbones"]})
    entries_of = {lib: [e for n, e in matrix["backbones"].items() if n.split(".", 1)[0] == lib] for lib in libs}
    lines = ["# Backbone compatibility", "",
             "Generated by `make compat` (`scripts/compat.py`); do not edit by hand. Two tiers of evidence, per "
             "backbone and task, both on the CPU with the values `otxlike build --backbone` writes (presets "
             "included) and the task's default template:", "",
             "- **verified** (end to end): swapped into a fresh workspace, trained one epoch on tiny digits data "
             "and evaluated (a pass: the pieces work together; see [the glossary](glossary.md)); minutes per pair, "
             "run on a sample of the backbones;",
             "- **fits**: built, one forward at the template's input size (32x32 for classification, 128x128 for "
             "the others), and the outputs are what the template's neck/heads take (the strides a multi-scale "
             "neck uses, picked through `out_indices`; 4-D maps whose channels the consumer can be set to); "
             "seconds per backbone, run over every backbone of every library. Not trained: a backbone that fits "
             "may still fail to train (see *How the tiers agree*).", "",
             "`otxlike find --task TASK` lists the backbones verified for the task and, marked `fits`, those that "
             "fit it and were not checked end to end (a verified failure outranks a fit); `--verified` lists only "
             "the former; `otxlike find --all` shows the failures too.",
             "", "Versions: " + ", ".join(f"{k} {v}" for k, v in matrix["versions"].items() if v), "",
             "## Summary: verified", "",
             "Passed / checked end to end per library and task. *In library*: the backbones `find` lists; "
             "*Checked*: those checked end to end on some task. *Multi-scale* backbones give at least "
             f"three distinct output strides with their default arguments at {PROBE_SIZE}x{PROBE_SIZE}.", "",
             "| Library | In library | Checked | Multi-scale | " + " | ".join(TASKS) + " | " +
             " | ".join(f"{SHORT[t]} (multi-scale)" for t in TASKS) + " |",
             "|---" * (4 + 2 * len(TASKS)) + "|"]

    def rate(entries, task, tier="tasks"):
        checked = [e for e in entries if task in e.get(tier, {})]
        return f"{sum(e[tier][task]['ok'] for e in checked)}/{len(checked)}" if checked else "-"

    for lib in libs:
        entries = [e for e in entries_of[lib] if e["tasks"]]
        ms = [e for e in entries if multi_scale(e)]
        lines.append(f"| {lib} | {totals.get(lib, '?')} | {len(entries)} | {len(ms)} | " + " | ".join(rate(entries, t) for t in TASKS) +
                     " | " + " | ".join(rate(ms, t) for t in TASKS) + " |")
    lines += ["", "## Summary: fits", "",
              "Fit / checked per library and task; *Listed*: what `otxlike find --task` lists (verified, or fits "
              "and not checked end to end) out of the library's backbones.", "",
              "| Library | In library | Checked | " + " | ".join(TASKS) + " | "
              + " | ".join(f"{SHORT[t]} listed" for t in TASKS) + " |",
              "|---" * (3 + 2 * len(TASKS)) + "|"]

    def listed(entries, task):
        return sum(1 for e in entries if (e["tasks"][task]["ok"] if task in e["tasks"]
                                          else e.get("fits", {}).get(task, {}).get("ok", False)))

    for lib in libs:
        entries = entries_of[lib]
        checked = [e for e in entries if e.get("fits")]
        lines.append(f"| {lib} | {totals.get(lib, '?')} | {len(checked)} | "
                     + " | ".join(rate(entries, t, "fits") for t in TASKS) + " | "
                     + " | ".join(f"{listed(entries, t)}/{totals.get(lib, '?')}" for t in TASKS) + " |")
    lines += ["", "## How the tiers agree", "",
              "Pairs checked in both tiers: how often a fit was also a pass end to end, and the reverse.", "",
              "| Task | Both checked | fits, verified | fits, failed end to end | does not fit, verified | "
              "neither |", "|---" * 6 + "|"]
    gaps = []
    for task in TASKS:
        both = [(n, e) for n, e in matrix["backbones"].items() if task in e["tasks"] and task in e.get("fits", {})]
        cells = Counter((e["fits"][task]["ok"], e["tasks"][task]["ok"]) for _, e in both)
        gaps += [f"{n} ({SHORT[task]}: {_kind(e['tasks'][task]['reason'])})" for n, e in both
                 if e["fits"][task]["ok"] and not e["tasks"][task]["ok"]]
        lines.append(f"| {task} | {len(both)} | {cells[(True, True)]} | {cells[(True, False)]} | "
                     f"{cells[(False, True)]} | {cells[(False, False)]} |")
    if gaps:
        lines += ["", "Fit but failed end to end: " + "; ".join(gaps) + "."]
    lines += ["", "## Most common failure reasons", ""]
    for tier, label in (("tasks", "verified"), ("fits", "fits")):
        for task in TASKS:
            reasons = Counter(_kind(e[tier][task]["reason"]) for e in matrix["backbones"].values()
                              if task in e.get(tier, {}) and not e[tier][task]["ok"])
            top = "; ".join(f"{why} ({n})" for why, n in reasons.most_common(4)) or "none"
            lines.append(f"- **{task}** ({label}): {top}")
    lines += ["", "In the tables below a cell is `pass` (verified), `FAIL:` and the reason (failed end to end), "
              "`fits`, or `no:` and the kind of reason (does not fit; `otxlike find --backbone NAME` gives the "
              "whole line); empty: not checked."]
    for lib in libs:
        lines += ["", f"## {lib}", "", "| Backbone | Strides | " + " | ".join(TASKS) + " |",
                  "|---" * (2 + len(TASKS)) + "|"]
        for name, e in matrix["backbones"].items():
            if name.split(".", 1)[0] != lib:
                continue
            cells = []
            for t in TASKS:
                v, f = e["tasks"].get(t), e.get("fits", {}).get(t)
                cells.append("pass" if v and v["ok"] else "FAIL: " + v["reason"].replace("|", "/")[:160] if v
                             else "" if f is None else "fits" if f["ok"] else "no: " + _kind(f["reason"]).replace("|", "/"))
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
    if "crashed its process" in reason or "can't allocate memory" in reason or "MemoryError" in reason:
        return "over the check's memory limit, or crashed"
    if "no out_indices to pick" in reason:
        return "cannot pick the outputs the template uses (no out_indices)"
    if "does not return 4-D feature maps" in reason:
        return "no 4-D feature maps"
    if " fails on a " in reason or "does not run on a" in reason:
        return "fails at the template's input size"
    if "could not build backbone" in reason and not reason.startswith(("train:", "eval:")):
        return "does not build with the default values"
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
    parser.add_argument("--memory-gb", type=float, help="memory limit of each worker (RLIMIT_DATA); default none")
    parser.add_argument("--tier", choices=("verified", "fits"), default="verified",
                        help="verified: swap, train, eval per pair; fits: build, one forward, strides per backbone")
    parser.add_argument("--stratified", type=int, metavar="N", help="verified tier: only pairs that fit and were not "
                        "checked end to end, timm's thinned to N per model family")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if not args.render_only:
        check = run_fits if args.tier == "fits" else run
        check(args.library or list(PROVIDERS), args.task or list(TASKS), args.jobs, args.timeout, args.backbone,
              args.redo, args.memory_gb, args.stratified)
    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider

    matrix = build_matrix(_read_results(), _read_results(FITS_RESULTS))
    libraries = sorted({n.split(".", 1)[0] for n in matrix["backbones"]})
    totals = {lib: len(indexed_backbones(provider(lib))[0]) for lib in libraries}
    MATRIX_PATH.write_text(json.dumps(matrix, indent=1) + "\n", encoding="utf-8")
    DOC.write_text(render(matrix, totals), encoding="utf-8")
    print(f"wrote {MATRIX_PATH.relative_to(REPO)} and {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
