"""The compatibility matrix: which backbone passed which task end to end (read-only).

A backbone *passes* a task when it swaps into a fresh workspace of the task's default template,
trains one epoch on tiny sample data and evaluates (:func:`otxlike.compat.verify.verify`).
``make compat`` runs this check for every backbone of every library and task (``scripts/compat.py``); the result ships
in the package as ``otxlike/compat/compat.json`` and is what ``otxlike find --task`` filters by.

Matrix document (``compat.json``)::

    {"format": 1, "versions": {"mmdet": "3.3.0", ...},
     "backbones": {"mmdet.ResNet": {"strides": [4, 8, 16, 32],
                                    "tasks": {"detection": {"ok": true, "reason": null, "seconds": 4.1}, ...}},
                   ...}}

``strides`` are the output strides with default arguments at 128x128 (null when the backbone does
not build with defaults). Reading the matrix imports no library.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from otxlike.errors import OtxlikeError
from otxlike.stack import CORE, unique

MATRIX_PATH = Path(__file__).with_name("compat.json")
MATRIX_FORMAT = 1


def matrix_stack() -> tuple[str, ...]:
    """Distributions whose versions the matrix records: the core stack and every library's."""
    from otxlike.catalog.providers import PROVIDERS

    return unique((*CORE, *(p.package for p in PROVIDERS.values() if p.cacheable)))


@lru_cache(maxsize=None)
def load_matrix(path: Path = MATRIX_PATH) -> dict:
    """The compatibility matrix document (see the module docstring); empty if there is none.

    Raises:
        OtxlikeError: If the file exists but is not a matrix of this format.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": MATRIX_FORMAT, "versions": {}, "backbones": {}}
    except (OSError, ValueError) as exc:
        raise OtxlikeError(f"cannot read the compatibility matrix {path} ({exc})", "reinstall otxlike") from exc
    if not isinstance(doc, dict) or doc.get("format") != MATRIX_FORMAT:
        raise OtxlikeError(f"{path} is not a compatibility matrix of format {MATRIX_FORMAT}", "reinstall otxlike")
    return doc


def task_status(backbone: str, task: str, matrix: dict | None = None) -> str | None:
    """``'pass'``, the one-line failure reason, or None if the pair was never checked."""
    entry = (matrix or load_matrix())["backbones"].get(backbone, {}).get("tasks", {}).get(task)
    if entry is None:
        return None
    return "pass" if entry["ok"] else entry["reason"]

