"""What every command shares: the console, the error mapping, the ``--workspace`` option.

A core :class:`~otxlike.errors.OtxlikeError` is printed as one line and exits with code 2; any
other error is one line with exit code 1. ``--debug`` shows the traceback too; the exit code stays.
"""

from __future__ import annotations

import errno
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.errors import OtxlikeError, one_line

state = {"debug": False}
"""Global CLI flags set by the app callback (``--debug``)."""

WorkspaceOpt = Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace folder (default: the current folder).")]


def console():
    """stdout console; lines never wrap mid-path, and pipes/CI get 160 columns instead of 80."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
"""OSErrors the user's machine causes (permissions, a read-only or full disk): exit 2, not a bug."""


@contextmanager
def errors():
    """Map errors to one line and an exit code (2 for user errors); --debug adds the traceback
    (and re-raises errors that are not the user's)."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(file=sys.stderr, soft_wrap=True)
    try:
        if not state["debug"]:
            warnings.simplefilter("ignore")
        yield
    except OtxlikeError as exc:
        if state["debug"]:
            import traceback

            traceback.print_exc(file=sys.stderr)
        err.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if state["debug"]:
            raise
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            where = f" {exc.filename}" if exc.filename else ""
            err.print(f"[bold red]error:[/] cannot use{escape(where)}: {escape(str(exc.strerror))} (free space or fix the permissions, "
                      "then run the command again)", highlight=False)
            raise typer.Exit(2) from None
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(one_line(exc))} (this may be a bug of otxlike: "
                  "please report it with the output of --debug)",
                  highlight=False)
        raise typer.Exit(1) from None


def print_lines(out, lines) -> None:
    """Print plain lines (no rich highlighting) or renderables, in order."""
    for line in lines:
        out.print(line, highlight=False)
