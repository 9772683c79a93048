"""Safe writes for files the user owns: write to a temp file, then rename; back up what is replaced."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import yaml


def atomic_write_text(path: Path, text: str, backup_dir: Path | None = None) -> Path | None:
    """Write ``text`` to ``path`` atomically, keeping a copy of the previous content.

    The text goes to a temporary file in the same folder, which is then renamed over ``path``
    (``os.replace`` is atomic on POSIX), so a crash never leaves a half-written file. A symlink is
    written through (its target gets the new text, the link stays), and the file keeps its mode;
    a new file gets the mode the user's umask gives.

    Args:
        path: Destination file.
        text: Full new content (UTF-8).
        backup_dir: If given and ``path`` exists with different content, the old file is copied
            there first (same file name).

    Returns:
        The backup file's path, or None if nothing was backed up.
    """
    path = Path(path)
    backup = None
    if backup_dir is not None and path.exists() and path.read_text(encoding="utf-8") != text:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / path.name
        shutil.copy2(path, backup)
    atomic_write_bytes(path, text.encode("utf-8"))
    return backup


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder renamed over it, as
    :func:`atomic_write_text` does (symlinks written through, the mode kept or from the umask)."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if missing) for the block, so
    read-modify-write cycles of several processes on one file do not lose each other's updates."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Dumper(yaml.SafeDumper):
    """Block-style YAML, except lists of scalars which stay on one line (``strides: [1, 2, 2, 2]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: object) -> str:
    """Render ``data`` as YAML, keeping the key order of the mappings."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def cache_dir() -> Path:
    """``$OTXLIKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/otxlike``, else ``~/.cache/otxlike``."""
    if os.environ.get("OTXLIKE_CACHE_DIR"):
        return Path(os.environ["OTXLIKE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "otxlike"


def timestamp() -> str:
    """Local time as ``YYYYMMDD_HHMMSS``, used for run and backup folder names."""
    return time.strftime("%Y%m%d_%H%M%S")


def check_folder_path(path: Path, option: str) -> None:
    """Refuse a folder path that is, or lies under, an existing file (no folder can be made there).

    Args:
        path: Where a command will create or use a folder.
        option: The command-line option that gave it (``--out``), for the message.

    Raises:
        OtxlikeError: ``path`` or its nearest existing ancestor is not a folder.
    """
    from otxlike.errors import OtxlikeError

    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"lies under the file {candidate}"
                raise OtxlikeError(f"{option} {path} {where}", f"pass a folder for {option}")
            return
