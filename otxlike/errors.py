"""The project's one error type.

The core raises :class:`OtxlikeError` for anything the user can fix (bad names, bad files, a
workspace in the wrong state). The CLI prints ``error: <message>`` plus the hint on one line and
exits with code 2; it never shows a traceback for these unless ``--debug`` is given.
"""

from __future__ import annotations


def one_line(text, limit: int = 400) -> str:
    """``str(text)`` with every run of whitespace (newlines included) made one space, cut to
    ``limit`` characters with a trailing ``...``."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class OtxlikeError(Exception):
    """A user-facing error: what was wrong, and what to do about it.

    Args:
        message: What went wrong, quoting the offending value.
        hint: What the user can do next (a command to run, a file to edit). Optional.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
