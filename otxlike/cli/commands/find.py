"""``otxlike find``: templates, backbones of libraries, or one backbone in detail."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.catalog.providers import PROVIDERS
from otxlike.cli.common import WorkspaceOpt, console, errors, print_lines

ORDER = 1


def find(
    backbone: Annotated[Optional[list[str]], typer.Option(help=f"Library ({', '.join(PROVIDERS)}, or all; repeat or "
                                                              "comma-separate), or one full name.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Only backbones verified end to end for this task, or that "
                                                    "fit it (docs/compatibility.md).")] = None,
    verified: Annotated[bool, typer.Option("--verified", help="With --task: only backbones verified end to end "
                                                             "(swap, train, eval), not those that only fit.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every backbone, with the failures and their reasons.")] = False,
    template: Annotated[bool, typer.Option("--template", help="List the task templates.")] = False,
    data_formats: Annotated[bool, typer.Option("--data-formats", help="List the data formats each task reads "
                                                                      "(of --task, if given).")] = False,
    addins: Annotated[bool, typer.Option("--addins", help="List the add-ins (built-in, and the workspace's custom "
                                                          "ones) with their entry functions and arguments.")] = False,
    modules: Annotated[bool, typer.Option("--modules", help="Print the module paths of the workspace's model, "
                                                            "the paths add-in lines name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document instead (see docs/json.md).")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List backbones of installed libraries (computed live), the task templates, the data formats,
    or one backbone in detail (--backbone mmdet.ResNet)."""
    from otxlike import find as core
    from otxlike.cli.render.tables import render_find

    out = console()
    with errors():
        if addins or modules:
            from otxlike.cli.render.lines import modules_lines
            from otxlike.cli.render.tables import addins_table
            from otxlike.configedit import addins as core_addins
            from otxlike.workspace.workspace import Workspace

            if addins:
                from otxlike.workspace.workspace import MANIFEST

                here = workspace is not None or (Path(".") / MANIFEST).is_file()
                ws = Workspace.load(workspace) if here else None
                found = core_addins.list_addins(ws)
                if as_json:
                    print(json.dumps({"addins": [vars(a) | {"methods": list(a.methods), "args": list(a.args),
                                                            "fits": list(a.fits)} for a in found]}, indent=2))
                else:
                    out.print(addins_table(found))
            if modules:
                paths = core_addins.module_paths(Workspace.load(workspace))
                if as_json:
                    print(json.dumps({"modules": [{"path": p, "type": t} for p, t in paths]}, indent=2))
                else:
                    print_lines(out, modules_lines(paths))
            return
        if as_json:  # what users' custom modules print() while imported goes to stderr, not into the document
            with contextlib.redirect_stdout(sys.stderr):
                views = core.find(backbone, task, show_all, template, workspace, data_formats, verified)
        else:
            views = core.find(backbone, task, show_all, template, workspace, data_formats, verified)
        if as_json:
            print(json.dumps(core.to_json(views), indent=2))
            return
        for view in views:
            print_lines(out, render_find(view))


def register(app: typer.Typer) -> None:
    app.command()(find)
