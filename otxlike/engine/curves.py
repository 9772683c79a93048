"""Training curves of a run as a picture: ``outputs/<run>/curves.png``.

mmengine's ``LocalVisBackend`` writes every logged scalar of a run to
``<run_dir>/<time>/vis_data/scalars.json`` (one JSON object per line: training rows carry
``loss``, ``lr``, ``iter`` and ``step`` = the iteration; validation rows carry the metrics and
``step`` = the epoch; see ``mmengine/visualization/vis_backend.py``). A resumed run adds a second
``<time>`` folder. The templates' ``TensorboardVisBackend`` writes the same scalars for
TensorBoard (``tensorboard --logdir outputs``); this picture needs nothing running.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from otxlike.fileio import atomic_write_bytes


def read_scalars(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """The training rows (with ``loss``) and validation rows (without) of every
    ``scalars.json`` of the run, oldest first (a resumed run's folders in time order)."""
    train, val = [], []
    for path in sorted(run_dir.glob("*/vis_data/scalars.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a killed run
                continue
            (train if "loss" in row else val).append(row)
    return train, val


def plot_curves(run_dir: Path, metric: str) -> Path | None:
    """Draw the run's training loss per logged iteration and ``metric`` per validation into
    ``<run_dir>/curves.png`` (written to a temporary file, then renamed).

    Args:
        run_dir: A training run folder.
        metric: The validation key to draw, e.g. ``accuracy/top1``.

    Returns:
        The picture's path, or None when the run logged no training loss.

    Raises:
        OSError: If the picture cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    train, val = read_scalars(run_dir)
    if not train:
        return None
    points = [(row["step"], row[metric]) for row in val if metric in row and row[metric] >= 0]
    fig = Figure(figsize=(9, 3.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    loss_ax.plot([row["step"] for row in train], [row["loss"] for row in train], color="tab:blue")
    loss_ax.set(title="training loss", xlabel="iteration", ylabel="loss")
    if points:
        metric_ax.plot(*zip(*points), marker="o", color="tab:orange")
    metric_ax.set(title=f"validation {metric}", xlabel="epoch", ylabel=metric)
    metric_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    out = run_dir / "curves.png"
    atomic_write_bytes(out, buffer.getvalue())
    return out
