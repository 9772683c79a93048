"""The training display: a rich progress bar per epoch, or one line per epoch without a terminal."""

from __future__ import annotations

import contextlib
import time


def train_progress(out):
    """A rich progress bar per epoch fed by the engine's Progress callbacks.

    Without a terminal (logs, CI) a bar would only render at the end, so one line per epoch is
    printed instead.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"), TimeElapsedColumn(),
                   console=out, transient=False, disable=not out.is_terminal)
    tasks: dict = {}  # epoch (or "check") -> rich task id

    def on_progress(p) -> None:
        if p.phase == "check":  # the first decode of the data's images
            if "check" not in tasks:
                tasks["check"] = bar.add_task("check", total=p.iters_per_epoch, epoch="(checking images)",
                                              loss="-", lr="-")
            bar.update(tasks["check"], completed=p.iter)
            return
        if p.phase == "start":
            if "check" in tasks:
                bar.remove_task(tasks.pop("check"))
            bar.console.print(hparams_line(p.hparams), highlight=False)
            if p.hparams.get("params"):
                bar.console.print(params_line(p.hparams["params"]), highlight=False)
            for line in weights_lines(p.hparams["weights"]):
                bar.console.print(line, highlight=False)
            skipped = p.hparams.get("skipped_images") or []
            if skipped:
                bar.console.print(f"[!] warning: --skip-bad-images left out {len(skipped)} unreadable files, e.g. "
                                  f"{skipped[0]} (all of them: hparams.yaml)", highlight=False)
            return
        if p.phase == "val":
            # COCO reports -1 for object sizes the data has none of: noise in a progress line
            shown = ", ".join(f"{k} {v:.3f}" for k, v in (p.metrics or {}).items() if v >= 0)
            bar.console.print(f"[*] epoch {p.epoch}/{p.max_epochs} val: {shown}", highlight=False)
            return
        if not out.is_terminal:
            if p.iter == p.iters_per_epoch:
                out.print(f"[*] epoch {p.epoch}/{p.max_epochs} train: {p.iter} iterations, "
                          f"loss {p.loss:.4f}, lr {p.lr:.2e}", highlight=False)
            return
        if p.epoch not in tasks:
            tasks[p.epoch] = bar.add_task("train", total=p.iters_per_epoch, epoch=f"{p.epoch}/{p.max_epochs}",
                                          loss="-", lr="-")
        bar.update(tasks[p.epoch], completed=p.iter, loss=f"{p.loss:.4f}" if p.loss is not None else "-",
                   lr=f"{p.lr:.2e}" if p.lr is not None else "-")

    return bar, on_progress


def params_line(params: dict) -> str:
    """``[*] Trainable/total parameters: 0.03M / 11.19M (0.27%)`` (ZhiJian's line, issue 16)."""
    return (f"[*] Trainable/total parameters: {params['trainable'] / 1e6:.2f}M / {params['total'] / 1e6:.2f}M "
            f"({params['percent']:.4g}%)")


def hparams_line(hp: dict) -> str:
    """One line with the run's effective hyper-parameters (``hparams.yaml``)."""
    parts = [f"epochs {hp['epochs']}", f"batch {hp['batch_size']}", f"{hp['optimizer']} lr {hp['lr']:g}",
             "schedule " + ("+".join(hp["schedulers"]) or "constant")]
    world = hp.get("world_size", 1)
    if world > 1:  # otxlike.engine.distributed.distribute: per-process batch kept, lr scaled
        parts[1] = f"batch {hp['batch_size']} x {world} processes = {hp['global_batch']}"
    if hp.get("lr_scaled") is not None and hp["lr"] and hp["lr_scaled"] != hp["lr"]:  # also model.py's auto_scale_lr
        parts[2] = f"{hp['optimizer']} lr {hp['lr_scaled']:g} ({hp['lr']:g} x {hp['lr_scaled'] / hp['lr']:g}, linear scaling)"
    if hp["warmup_iters"]:
        parts.append(f"warm-up {hp['warmup_iters']} iters")
    parts.append(f"eval every {hp['eval_interval']} on {hp['eval_key']}")
    if hp["early_stop"]:
        parts.append(f"early stop {hp['early_stop']}")
    parts += [hp["precision"], hp["device"], f"seed {hp['seed']}"]
    if hp["cfg_options"]:
        parts.append("cfg-options " + " ".join(hp["cfg_options"]))
    if hp.get("backbone"):
        scratch = " ".join(f"{k}={v}" for k, v in (hp.get("from_scratch") or {}).items())
        parts.append(f"backbone {hp['backbone']}" + (f" ({scratch})" if scratch else ""))
    return "[*] hparams: " + ", ".join(parts)


def weights_lines(weights: list[dict]) -> list[str]:
    """One line per pretrained checkpoint: loaded, or the warning that the run starts from random
    weights (with the URL and the cache file that would make it load)."""
    lines = []
    for w in weights:
        if w["loaded"]:
            lines.append(f"[*] weights of {w['module']}: {w['checkpoint']}")
        elif w["reason"] is None:
            lines.append(f"[*] weights of {w['module']}: random initialisation (--weights none)")
        else:
            lines.append(f"[!] warning: could not load the weights {w['checkpoint']} of {w['module']} "
                         f"({w['reason']}); training from random weights. To use them, {w['fetch']}")
    return lines


@contextlib.contextmanager
def check_progress(out, after: float = 1.0):
    """Yield an ``on_progress(decoded, to_decode, folder)`` for :func:`otxlike.data.images.image_check`
    that shows a transient bar per folder once the check has run for ``after`` seconds (a large
    dataset's first check); nothing on a quick check or without a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("checking images in {task.fields[folder]}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=out, transient=True, disable=not out.is_terminal)
    start, tasks = time.monotonic(), {}

    def on_progress(done: int, total: int, folder) -> None:
        if time.monotonic() - start < after and folder not in tasks:
            return
        if not tasks:
            bar.start()
        if folder not in tasks:
            tasks[folder] = bar.add_task("check", total=total, folder=str(folder))
        bar.update(tasks[folder], completed=done, total=total)

    try:
        yield on_progress
    finally:
        bar.stop()
