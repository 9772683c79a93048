"""The compatibility matrix: which backbone fits or passed which task (read-only).

Two tiers of evidence, per backbone and task:

- *verified*: the backbone swaps into a fresh workspace of the task's default template, trains
  one epoch on tiny sample data and evaluates (:func:`otxlike.compat.verify.verify`; minutes);
- *fits*: built with the values ``build --backbone`` writes, one forward at the template's input
  size gives strides and channels the template's neck/heads take
  (:func:`otxlike.compat.fits.check_fits`; seconds, run over every backbone of every library).

``make compat`` runs the checks (``scripts/compat.py``); the result ships in the package as
``otxlike/compat/compat.json`` and is what ``otxlike find --task`` lists by. A verified verdict,
pass or fail, outranks a fits verdict (:func:`task_tier`).

Matrix document (``compat.json``)::

    {"format": 2, "versions": {"mmdet": "3.3.0", ...},
     "backbones": {"mmdet.ResNet": {"strides": [4, 8, 16, 32],
                                    "tasks": {"detection": {"ok": true, "reason": null, "seconds": 4.1}, ...},
                                    "fits": {"detection": {"ok": true, "reason": null}, ...}},
                   ...}}

``tasks`` holds the verified verdicts, ``fits`` the fits verdicts (either may lack a task: not
checked in that tier). ``strides`` are the output strides with default arguments at 128x128
(null when the backbone does not build with defaults). Format 1 had no ``fits``. Reading the
matrix imports no library.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from otxlike.errors import OtxlikeError
from otxlike.stack import CORE, unique

MATRIX_PATH = Path(__file__).with_name("compat.json")
MATRIX_FORMAT = 2
VERIFIED = "verified"
FITS = "fits"
#: The tiers, strongest evidence first.
TIERS = (VERIFIED, FITS)


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
    """The verified tier's verdict: ``'pass'``, the one-line failure reason, or None if the pair
    was never checked end to end."""
    entry = (matrix or load_matrix())["backbones"].get(backbone, {}).get("tasks", {}).get(task)
    if entry is None:
        return None
    return "pass" if entry["ok"] else entry["reason"]


def task_tier(backbone: str, task: str, matrix: dict | None = None) -> tuple[str | None, str | None]:
    """``(tier, reason)`` of a backbone on a task, the strongest evidence first.

    Returns:
        ``('verified', None)`` if it passed end to end; ``(None, reason)`` if it failed end to
        end; else ``('fits', None)`` if it fits; ``(None, 'fits: ' + reason)`` if it does not;
        ``(None, None)`` if it was never checked.
    """
    entry = (matrix or load_matrix())["backbones"].get(backbone, {})
    verified = entry.get("tasks", {}).get(task)
    if verified is not None:
        return (VERIFIED, None) if verified["ok"] else (None, verified["reason"])
    fits = entry.get("fits", {}).get(task)
    if fits is None:
        return None, None
    return (FITS, None) if fits["ok"] else (None, f"{FITS}: {fits['reason']}")

