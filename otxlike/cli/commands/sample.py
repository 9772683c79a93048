"""``otxlike sample``: sample datasets made from real images that installed packages ship."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import console, errors, print_lines

ORDER = 8

sample_app = typer.Typer(help="Write sample datasets made from real images shipped by installed packages.",
                         no_args_is_help=True, rich_markup_mode=None)


@sample_app.command("digits")
def sample_digits(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write train/ and val/ into.")],
    task: Annotated[str, typer.Option(help="classification: a folder per class; detection, instance-segmentation, "
                                           "segmentation: canvases with COCO JSON and label maps.")] = "classification",
    num_train: Annotated[int, typer.Option(help="Canvases in train (canvas tasks).")] = 200,
    num_val: Annotated[int, typer.Option(help="Canvases in val (canvas tasks).")] = 50,
    size: Annotated[Optional[int], typer.Option(help="Image side in pixels (default 32 for classification, 128 for canvases).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the layout.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="At most this many images per class (classification).")] = None,
) -> None:
    """scikit-learn's UCI digits (1,797 real scans) as a dataset for a task."""
    from otxlike.cli.render.lines import sample_lines
    from otxlike.tasks import get_task

    out = console()
    with errors():
        ds = get_task(task).write_sample(out_dir, size=size, num_train=num_train, num_val=num_val, seed=seed,
                                         limit=limit)
        print_lines(out, sample_lines(ds))


def register(app: typer.Typer) -> None:
    app.add_typer(sample_app, name="sample")
