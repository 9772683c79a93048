"""``otxlike``: build a workspace, find and swap backbones, train and evaluate.

The app is assembled from ``otxlike/cli/commands/``: every module there is one verb (or one
group of verbs) with a ``register(app)`` function and an ``ORDER`` (its place in ``--help``), so
a new verb is one new file. Each command calls one core function.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

import typer

from otxlike import __version__
from otxlike.cli import commands
from otxlike.cli.common import state

# Plain click help (rich_markup_mode=None) keeps `otxlike --help` from importing rich; rich is
# imported by the commands that print.
app = typer.Typer(
    help="Build, find and swap backbones, train and evaluate OpenMMLab models from a workspace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"otxlike {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and library warnings.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    state["debug"] = debug


_modules = [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
for _module in sorted(_modules, key=lambda m: m.ORDER):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
