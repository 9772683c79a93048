"""``otxlike doctor``: the stack's versions and a check of mmcv's compiled ops."""

from __future__ import annotations

import typer

from otxlike.cli.common import console, errors

ORDER = 7


def doctor() -> None:
    """Print the versions of the stack and check that mmcv's compiled ops run."""
    from otxlike.doctor import check_mmcv_ops, stack_versions

    out = console()
    with errors():
        for name, version in stack_versions().items():
            out.print(f"{name:16s} {version or 'not installed'}", highlight=False)
        out.print(f"mmcv.ops         {check_mmcv_ops()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
