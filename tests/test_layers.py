"""The package's layers (docs/architecture.md): no module imports from a layer above its own, and
no two parts import each other, directly or in a circle. Every import counts, including those
inside functions (where otxlike keeps its heavy imports)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "otxlike"

#: Parts of otxlike/ (a sub-package or a top-level module) by layer, lowest first.
LAYERS = (
    ("errors", "fileio", "stack"),
    ("registry", "models", "data"),
    ("tasks",),
    ("workspace", "catalog"),
    ("configedit", "engine", "compat", "find", "doctor", "deploy", "hpo"),
    ("cli",),
)
LAYER = {part: n for n, parts in enumerate(LAYERS) for part in parts}
#: The package's face: the lazy public API (``otxlike.register_backbone``) and ``python -m otxlike``.
ENTRY_POINTS = ("__init__", "__main__")


def _part(module: str) -> str | None:
    """The part of a dotted module name under otxlike, or None for other packages."""
    names = module.split(".")
    return names[1] if names[0] == "otxlike" and len(names) > 1 else None


def _imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """``(module, line)`` of every otxlike import in ``path`` (a file under ``root``);
    ``from otxlike import X`` counts as ``otxlike.X`` (a sub-module or an attribute of the
    package face)."""
    package = ["otxlike", *path.relative_to(root).parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            names = [f"{base}.{a.name}" for a in node.names] if base == "otxlike" else [base]
            found += [(n, node.lineno) for n in names]
    return [(m, line) for m, line in found if m.startswith("otxlike")]


def _edges() -> list[tuple[str, str, str]]:
    """``(source part, target part, 'file:line')`` of every import between two parts."""
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if source in ENTRY_POINTS:
            continue
        for module, line in _imports(path):
            target = _part(module)
            is_part = (ROOT / target).is_dir() or (ROOT / f"{target}.py").is_file() if target else False
            if is_part and target != source and target not in ENTRY_POINTS:  # else: the package face
                edges.append((source, target, f"{rel}:{line}"))
    return edges


def test_every_part_has_a_layer():
    parts = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert parts - set(ENTRY_POINTS) == set(LAYER), "add the new part to LAYERS (and docs/architecture.md)"


def test_no_import_goes_up_a_layer():
    upward = [f"{where}: {source} (layer {LAYER[source]}) imports {target} (layer {LAYER[target]})"
              for source, target, where in _edges() if LAYER[target] > LAYER[source]]
    assert upward == []


def test_no_circular_imports_between_parts():
    graph: dict[str, set[str]] = {}
    for source, target, _ in _edges():
        graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    circular = sorted(p for p in graph if reaches(p, p, set()))
    assert circular == []


@pytest.mark.parametrize("code, expected", [
    ("from otxlike.workspace.workspace import Workspace", [("otxlike.workspace.workspace", 1)]),
    ("from otxlike import tasks", [("otxlike.tasks", 1)]),
    ("def f():\n    from ..catalog.spec import ArgSpec", [("otxlike.catalog.spec", 2)]),
])
def test_the_walker_sees_every_kind_of_import(tmp_path, code, expected):
    """The checks above are only as good as this reader: module-level, package-face, relative
    and function-level imports are all found."""
    (tmp_path / "configedit").mkdir()
    path = tmp_path / "configedit" / "x.py"
    path.write_text(code)
    assert _imports(path, tmp_path) == expected
