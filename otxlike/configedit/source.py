"""Edit an mmengine Python config as text, guided by its syntax tree.

``Config.dump()`` flattens ``_base_``, drops comments, sorts keys and inlines shared variables
(see ``mmengine/config/config.py``), so otxlike never regenerates a user's file. Instead it finds
the exact source span of one value with :mod:`ast` and replaces only that span; every other
character of the file is kept.
"""

from __future__ import annotations

import ast
from typing import Any

from otxlike.errors import OtxlikeError

INDENT = "    "


def format_value(value: Any, indent: int = 1) -> str:
    """Python source for ``value`` in the style of OpenMMLab configs (``dict(type='X', ...)``).

    Dicts with identifier keys become ``dict(...)`` calls with one key per line; tuples keep the
    ``(3, )`` spelling for one element; everything else uses ``repr``.
    """
    inner = INDENT * indent
    if isinstance(value, dict):
        if not value:
            return "dict()"
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            items = [f"{inner}{k}={format_value(v, indent + 1)}" for k, v in value.items()]
            return "dict(\n" + ",\n".join(items) + ")"
        items = [f"{inner}{k!r}: {format_value(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "}"
    if isinstance(value, tuple):
        body = ", ".join(format_value(v, indent + 1) for v in value)
        return f"({body}, )" if len(value) == 1 else f"({body})"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v, indent + 1) for v in value) + "]"
    return repr(value)


class ConfigSource:
    """A Python config file's text with pending span replacements.

    Args:
        text: The file's content.
        filename: Used in error messages.

    Raises:
        OtxlikeError: If the text is not valid Python.
    """

    def __init__(self, text: str, filename: str = "model.py") -> None:
        self.text = text
        self.filename = filename
        try:
            self.tree = ast.parse(text)
        except SyntaxError as exc:
            raise OtxlikeError(
                f"{filename} is not valid Python (line {exc.lineno}: {exc.msg})", f"fix {filename} first"
            ) from exc
        self._line_starts = [0]
        for line in text.splitlines(keepends=True):
            self._line_starts.append(self._line_starts[-1] + len(line))
        self._edits: list[tuple[int, int, str]] = []

    # -- locating ---------------------------------------------------------------------------
    def _offset(self, lineno: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets
        line_start = self._line_starts[lineno - 1]
        line = self.text[line_start:self._line_starts[lineno]]
        return line_start + len(line.encode("utf-8")[:col].decode("utf-8"))

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return self._offset(node.lineno, node.col_offset), self._offset(node.end_lineno, node.end_col_offset)

    def _top_level(self, name: str) -> ast.Assign | None:
        found = None
        for stmt in self.tree.body:  # the last assignment wins, as when Python runs the file
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                found = stmt
        return found

    @staticmethod
    def _entries(node: ast.AST) -> dict[str, ast.AST] | None:
        """Keys of a ``dict(...)`` call or ``{...}`` literal, mapped to their value nodes."""
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            return {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(node, ast.Dict):
            return {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
        return None

    def find(self, path: tuple[str, ...]) -> ast.AST | None:
        """The value node at ``path``, e.g. ``('model', 'head')``; None if any step is missing."""
        stmt = self._top_level(path[0])
        node = stmt.value if stmt else None
        for key in path[1:]:
            entries = self._entries(node) if node is not None else None
            node = entries.get(key) if entries else None
        return node

    def literal(self, path: tuple[str, ...]) -> Any:
        """The Python value at ``path`` if it is a literal, else None."""
        node = self.find(path)
        try:
            return ast.literal_eval(node) if node is not None else None
        except ValueError:
            return None

    def key_paths(self, path: tuple[str, ...], key: str) -> list[tuple[str, ...]]:
        """Paths of every ``key`` nested anywhere in the dict at ``path``, in source order.

        E.g. ``key_paths(('model',), 'num_classes')`` gives ``[('model', 'roi_head', 'bbox_head',
        'num_classes'), ('model', 'roi_head', 'mask_head', 'num_classes')]`` for a Mask R-CNN.
        """
        found: list[tuple[str, ...]] = []

        def walk(node: ast.AST | None, here: tuple[str, ...]) -> None:
            for name, value in (self._entries(node) or {}).items() if node is not None else ():
                if name == key:
                    found.append(here + (name,))
                else:
                    walk(value, here + (name,))

        walk(self.find(path), path)
        return found

    # -- editing ----------------------------------------------------------------------------
    def replace(self, path: tuple[str, ...], value: Any) -> None:
        """Replace the value at ``path`` with ``value`` (formatted by :func:`format_value`).

        Raises:
            OtxlikeError: If ``path`` does not exist in the file.
        """
        node = self.find(path)
        if node is None:
            raise OtxlikeError(f"{self.filename} has no '{'.'.join(path)}' to rewrite", f"restore it in {self.filename}")
        start, end = self._span(node)
        self._edits.append((start, end, format_value(value, indent=len(path))))

    def set_key(self, path: tuple[str, ...], key: str, value: Any) -> None:
        """Set ``key`` inside the dict at ``path``: replace its value, or add it after the last key.

        Raises:
            OtxlikeError: If there is no dict at ``path``.
        """
        node = self.find(path)
        entries = self._entries(node) if node is not None else None
        if entries is None:
            raise OtxlikeError(f"{self.filename} has no dict at '{'.'.join(path)}'", f"restore it in {self.filename}")
        if key in entries:
            self.replace(path + (key,), value)
            return
        items = node.keywords if isinstance(node, ast.Call) else node.values
        text = format_value(value, indent=len(path) + 1)
        if items:
            _, end = self._span(items[-1])
            new = f", {key}={text}" if isinstance(node, ast.Call) else f", {key!r}: {text}"
        else:
            _, end = self._span(node)
            end -= 1  # before the closing bracket
            new = f"{key}={text}" if isinstance(node, ast.Call) else f"{key!r}: {text}"
        self._edits.append((end, end, new))

    def set_top(self, name: str, value: Any) -> None:
        """Set the top-level variable ``name``: replace its value, or add ``name = value`` after
        ``default_scope`` (at the top when there is none)."""
        if self._top_level(name) is not None:
            self.replace((name,), value)
            return
        anchor = self._top_level("default_scope")
        at = self._span(anchor)[1] if anchor is not None else 0
        line = f"{name} = {format_value(value)}"
        self._edits.append((at, at, f"\n{line}" if anchor is not None else f"{line}\n"))

    def set_top_list(self, name: str, items: list[str], comment: str, after: str = "model") -> None:
        """Set the top-level ``name`` to a list of strings written one per line (a list users read and
        edit, such as ``addins``): replace the value of an existing assignment, or add
        ``comment`` + the assignment after the statement assigning ``after`` (at the end when none).
        """
        value = "[\n" + "".join(f"{INDENT}{item!r},\n" for item in items) + "]"
        stmt = self._top_level(name)
        if stmt is not None:
            start, end = self._span(stmt.value)
            self._edits.append((start, end, value))
            return
        anchor = self._top_level(after)
        at = self._span(anchor)[1] if anchor is not None else len(self.text)
        self._edits.append((at, at, f"\n\n{comment}\n{name} = {value}"))

    def remove_top(self, name: str, comment_prefix: str | None = None) -> bool:
        """Remove the top-level assignment of ``name`` (its whole lines), with the comment line right
        above it when that starts with ``comment_prefix``, and one blank line before them.

        Returns:
            Whether there was one.
        """
        stmt = self._top_level(name)
        if stmt is None:
            return False
        first, last = stmt.lineno, stmt.end_lineno
        lines = self.text.splitlines(keepends=True)
        if comment_prefix and first > 1 and lines[first - 2].startswith(comment_prefix):
            first -= 1
        if first > 1 and not lines[first - 2].strip():
            first -= 1
        start = self._line_starts[first - 1]
        end = self._line_starts[min(last, len(lines))]
        self._edits.append((start, end, ""))
        return True

    def result(self) -> str:
        """The text with every pending edit applied.

        Raises:
            OtxlikeError: If two edits overlap (a bug in the caller's plan).
        """
        out, last = self.text, None
        for start, end, new in sorted(self._edits, reverse=True):
            if last is not None and end > last:
                raise OtxlikeError(f"overlapping edits in {self.filename}")
            out = out[:start] + new + out[end:]
            last = start
        return out


def add_custom_imports(source: ConfigSource, modules: list[str]) -> None:
    """Add ``modules`` to model.py's ``custom_imports`` (mmengine imports them when it loads
    the config; see ``mmengine/config/config.py``), keeping the ones already listed."""
    current = source.literal(("custom_imports", "imports")) or []
    imports = list(dict.fromkeys([*current, *modules]))
    if imports != list(current):
        source.set_top("custom_imports", {"imports": imports, "allow_failed_imports": False})
