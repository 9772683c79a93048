"""The one-line add-in syntax: where an add-in module goes in a model, and which of its entry
functions runs there.

The syntax is ZhiJian's (``zhijian/models/addin``, its README's "one line of code" examples),
parsed here by a small hand-written scanner instead of ZhiJian's regular expressions (its ``...``
is an unescaped regex that matches any three characters)::

    (Adapter.adapt_input): ...->{inout1}(head.fc)->...                 # before head.fc
    (LoRA.adapt_output): ...->(backbone.layer4.0.conv2){inout1}->...   # after conv2
    (Adapter.adapt_across_input): ...->(backbone.layer3){in1}->...->{out1}(backbone.layer4.1)->...
    (LoRA(r=8, alpha=16).adapt_output): ...->(backbone.layer4.0.conv1){inout1}->...
    (BitFit): ...->(backbone)->...                                     # a whole module, no point

Grammar (spaces allowed around ``->`` and after ``:``)::

    line    := '(' NAME [ '(' kwargs ')' ] [ '.' METHOD ] ')' ':' chain
    chain   := '...' ( '->' item '->' '...' )+
    item    := [ '{' TAG '}' ] '(' PATH ')' [ '{' TAG '}' ]
    TAG     := 'inout' N | 'in' N | 'out' N
    PATH    := a module path as ``print(model)`` / ``named_modules()`` shows it; ``block[3].attn``
               is the same as ``block.3.attn``

``...`` is the literal three dots ("any modules"); a tag before a module is a point on its input,
after it a point on its output. ``{inoutN}`` is one insertion point: ``adapt_input`` needs it
before its module, ``adapt_output`` after. ``{inN}`` / ``{outN}`` are a pair across layers: the
add-in's ``adapt_across_input`` runs at ``{inN}`` and what it returns is added back by
``adapt_across_output`` at ``{outN}``; ``{inN}`` comes first. A line without a method names a
whole-module add-in (``BitFit``, ``LinearProbe``, ``PartialK``) and one untagged module.

Every syntax error is an :class:`AddinSyntaxError` naming the column (1-based) and quoting the line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from otxlike.errors import OtxlikeError

METHODS = ("adapt_input", "adapt_output", "adapt_across_input")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAG = re.compile(r"(inout|in|out)([0-9]+)")
_PATH_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")


class AddinSyntaxError(OtxlikeError):
    """A line that does not follow the add-in syntax.

    Attributes:
        column: 1-based column of the first character that is wrong.
    """

    def __init__(self, line: str, column: int, what: str) -> None:
        self.line, self.column = line, column
        super().__init__(f"add-in line, column {column}: {what}: {line!r}",
                         "the form is (Class.method): ...->(module.path){inout1}->... (docs/addins.md)")


@dataclass(frozen=True)
class Point:
    """One tagged place of a line.

    Attributes:
        tag: ``inout``, ``in`` or ``out``.
        number: N of the tag.
        path: Dotted module path, e.g. ``backbone.layer4.0.conv2``.
        side: ``input`` (the tag precedes the module) or ``output`` (it follows it).
    """

    tag: str
    number: int
    path: str
    side: str

    @property
    def label(self) -> str:
        """``inout1``, ``in2``, ..."""
        return f"{self.tag}{self.number}"


@dataclass(frozen=True)
class AddinLine:
    """A parsed add-in line.

    Attributes:
        name: The add-in class, e.g. ``LoRA`` (a built-in) or a custom one's name.
        args: Keyword arguments given in the line, e.g. ``{'r': 8}``.
        method: The entry function named, or None for a whole-module add-in.
        points: The tagged places, in the order of the chain.
        modules: The untagged modules of the chain (the targets of a whole-module add-in).
    """

    name: str
    args: dict = field(default_factory=dict)
    method: str | None = None
    points: tuple[Point, ...] = ()
    modules: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """Every module path of the line, tagged or not, in chain order (duplicates removed)."""
        return tuple(dict.fromkeys([p.path for p in self.points] + list(self.modules)))

    def pairs(self) -> list[tuple[Point, Point]]:
        """``(in point, out point)`` of each ``{inN}``/``{outN}`` pair, by N."""
        ins = {p.number: p for p in self.points if p.tag == "in"}
        outs = {p.number: p for p in self.points if p.tag == "out"}
        return [(ins[n], outs[n]) for n in sorted(ins)]

    def text(self) -> str:
        """The line in canonical spelling: ``parse_line(line.text()) == line``."""
        args = ""
        if self.args:
            args = "(" + ", ".join(f"{k}={v!r}" for k, v in self.args.items()) + ")"
        head = f"({self.name}{args}{'.' + self.method if self.method else ''}):"
        chain = sorted([(self._order[i], _item(p)) for i, p in enumerate(self.points)]
                       + [(self._order[len(self.points) + i], f"({m})") for i, m in enumerate(self.modules)])
        # items sharing a module (a pair's {in1} and {out1} on one module) are merged
        return head + " ...->" + "->...->".join(_merge([item for _, item in chain])) + "->..."

    @property
    def _order(self) -> list[int]:
        """Chain position of each point, then of each untagged module (the order of the line)."""
        return list(self._positions) if self._positions else list(range(len(self.points) + len(self.modules)))

    #: Chain positions as parsed (see ``_order``); empty for a line built in code: points first.
    _positions: tuple[int, ...] = ()


def _item(p: Point) -> str:
    return f"{{{p.label}}}({p.path})" if p.side == "input" else f"({p.path}){{{p.label}}}"


def _merge(items: list[str]) -> list[str]:
    """``{in1}(m)`` and ``(m){out1}`` next to each other become ``{in1}(m){out1}``."""
    out: list[str] = []
    for item in items:
        if out and out[-1].startswith("{") and not out[-1].endswith("}") and item.startswith("(") \
                and item.endswith("}") and out[-1][out[-1].index("("):] == item[:item.rindex(")") + 1]:
            out[-1] = out[-1] + item[item.rindex(")") + 1:]
        else:
            out.append(item)
    return out


class _Scanner:
    def __init__(self, line: str) -> None:
        self.line, self.i = line, 0

    def fail(self, what: str, at: int | None = None):
        raise AddinSyntaxError(self.line, (self.i if at is None else at) + 1, what)

    def skip_spaces(self) -> None:
        while self.i < len(self.line) and self.line[self.i] in " \t":
            self.i += 1

    def peek(self, text: str) -> bool:
        return self.line.startswith(text, self.i)

    def expect(self, text: str, what: str | None = None) -> None:
        if not self.peek(text):
            found = self.line[self.i:self.i + 8] or "the end of the line"
            self.fail(f"expected '{text}'{' ' + what if what else ''}, found {found!r}")
        self.i += len(text)

    def name(self, what: str) -> str:
        m = _NAME.match(self.line, self.i)
        if not m:
            self.fail(f"expected {what}")
        self.i = m.end()
        return m.group()

    def until(self, closing: str, what: str) -> tuple[str, int]:
        start = self.i
        end = self.line.find(closing, start)
        if end < 0:
            self.fail(f"'{closing}' missing after {what}", start - 1)
        self.i = end + 1
        return self.line[start:end], start


def _parse_args(scan: _Scanner) -> dict:
    """``k=v, ...`` up to the matching ``)``; values are Python literals."""
    start, depth, j = scan.i, 1, scan.i
    while j < len(scan.line) and depth:
        depth += {"(": 1, ")": -1}.get(scan.line[j], 0)
        j += 1
    if depth:
        scan.fail("')' missing after the add-in's arguments", start - 1)
    text = scan.line[start:j - 1]
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if call.args:
            raise ValueError("positional")
        args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        if any(k is None for k in args):
            raise ValueError("**")
    except (SyntaxError, ValueError):
        scan.fail("arguments must be name=value with literal values, e.g. (LoRA(r=4).adapt_output)", start)
    scan.i = j
    return args


def _parse_path(scan: _Scanner) -> tuple[str, int]:
    text, start = scan.until(")", "a module path")
    if not text.strip():
        scan.fail("empty module path", start)
    parts, k = [], 0
    spelled = text.strip()
    offset = start + text.index(spelled)
    while k < len(spelled):
        if spelled[k] == "[":
            close = spelled.find("]", k)
            if close < 0 or not spelled[k + 1:close].isdigit():
                scan.fail("an index in a module path is a number in brackets, e.g. block[3]", offset + k)
            parts.append(spelled[k + 1:close])
            k = close + 1
            continue
        if spelled[k] == "." and parts:
            k += 1
        m = _PATH_PART.match(spelled, k)
        if not m:
            scan.fail(f"{spelled[k]!r} cannot be in a module path", offset + k)
        parts.append(m.group())
        k = m.end()
    return ".".join(parts), start


def _parse_tag(scan: _Scanner) -> tuple[str, int, int]:
    text, start = scan.until("}", "a tag")
    m = _TAG.fullmatch(text)
    if not m:
        scan.fail(f"tag {{{text}}} is not inoutN, inN or outN", start - 1)
    return m.group(1), int(m.group(2)), start


def parse_line(line: str) -> AddinLine:
    """Parse one add-in line (module docstring).

    Raises:
        AddinSyntaxError: With the column of the first wrong character: a bad head, ``...`` spelled
            otherwise, a module without ``...`` between it and the next, an unknown or repeated
            tag, an ``{inN}`` without its ``{outN}`` (or after it), a method whose point is on
            the wrong side (``adapt_input`` needs ``{inoutN}(m)``), a whole-module add-in with
            tags.
    """
    if not isinstance(line, str):
        raise OtxlikeError(f"an add-in line is a string, not {type(line).__name__}", "quote it")
    scan = _Scanner(line)
    scan.skip_spaces()
    scan.expect("(", "to open the add-in's name")
    name = scan.name("the add-in's class name")
    args = {}
    if scan.peek("("):
        scan.i += 1
        args = _parse_args(scan)
    method = None
    if scan.peek("."):
        scan.i += 1
        at = scan.i
        method = scan.name("an entry function after '.'")
        if method not in METHODS:
            scan.fail(f"unknown entry function '{method}' (one of {', '.join(METHODS)})", at)
    scan.expect(")", "after the add-in")
    scan.skip_spaces()
    scan.expect(":", "after (Class.method)")
    scan.skip_spaces()

    points: list[tuple[Point, int]] = []
    modules: list[tuple[str, int]] = []
    order: list[tuple[str, int]] = []
    scan.expect("...", "('any modules') to start the chain")
    items = 0
    while True:
        scan.skip_spaces()
        if scan.i >= len(line):
            break
        if scan.peek("#"):
            break
        scan.expect("->", "between the chain's items")
        scan.skip_spaces()
        if scan.peek("..."):
            scan.fail("two '...' in a row")
        item_at = scan.i
        before = None
        if scan.peek("{"):
            scan.i += 1
            before = _parse_tag(scan)
        if not scan.peek("("):
            if scan.peek(".") and not scan.peek("..."):
                scan.fail("'...' is three dots")
            scan.fail("expected (module.path)" + (" after the tag" if before else " or '...'"))
        scan.i += 1
        path, _ = _parse_path(scan)
        after = None
        if scan.peek("{"):
            scan.i += 1
            after = _parse_tag(scan)
        if before is None and after is None:
            modules.append((path, item_at))
            order.append(("m", len(modules) - 1))
        for tag, side in ((before, "input"), (after, "output")):
            if tag is not None:
                points.append((Point(tag[0], tag[1], path, side), tag[2]))
                order.append(("p", len(points) - 1))
        items += 1
        scan.skip_spaces()
        scan.expect("->", "after a module (the chain continues with ->...)")
        scan.skip_spaces()
        if not scan.peek("..."):
            if scan.peek("(") or scan.peek("{"):
                scan.fail("put '...' between two modules: (a)->...->(b)")
            if scan.peek("."):
                scan.fail("'...' is three dots")
            scan.fail("expected '...' after '->'")
        scan.i += 3
    if items == 0:
        scan.fail("the chain names no module: ...->(module.path){inout1}->...", 0)

    # tags: unique, paired, on the side the method needs
    seen: dict[str, int] = {}
    for p, at in points:
        if p.label in seen:
            scan.fail(f"tag {{{p.label}}} appears twice", at - 1)
        seen[p.label] = at
    for p, at in points:
        if p.tag == "in" and f"out{p.number}" not in seen:
            scan.fail(f"{{{p.label}}} has no {{out{p.number}}}", at - 1)
        if p.tag == "out" and f"in{p.number}" not in seen:
            scan.fail(f"{{{p.label}}} has no {{in{p.number}}}", at - 1)
        if p.tag == "in" and seen[f"out{p.number}"] < at:
            scan.fail(f"{{{p.label}}} comes after its {{out{p.number}}}", at - 1)
    if method is None:
        if points:
            scan.fail(f"({name}) names no entry function, so its modules take no tags; "
                      f"write ({name}.adapt_output) for an insertion point", points[0][1] - 1)
    else:
        if not points:
            scan.fail(f"{method} needs a tagged point, e.g. (module){{inout1}}", modules[0][1] if modules else 0)
        across = method == "adapt_across_input"
        for p, at in points:
            if across and p.tag == "inout":
                scan.fail(f"{{{p.label}}} is a single point; adapt_across_input takes {{inN}}...{{outN}} pairs", at - 1)
            if not across and p.tag != "inout":
                scan.fail(f"{{{p.label}}} is half of a pair across layers; {method} takes {{inoutN}} "
                          "(or name adapt_across_input)", at - 1)
            if method == "adapt_input" and p.side != "input":
                scan.fail(f"adapt_input runs before a module: write {{{p.label}}}({p.path})", at - 1)
            if method == "adapt_output" and p.side != "output":
                scan.fail(f"adapt_output runs after a module: write ({p.path}){{{p.label}}}", at - 1)
        if modules:
            scan.fail(f"module ({modules[0][0]}) has no tag; every module of a {method} line takes one",
                      modules[0][1])
    positions = [0] * (len(points) + len(modules))
    for rank, (kind, index) in enumerate(order):
        positions[index if kind == "p" else len(points) + index] = rank
    return AddinLine(name, args, method, tuple(p for p, _ in points), tuple(m for m, _ in modules),
                     tuple(positions))


def format_lines(lines: list[AddinLine]) -> list[str]:
    """The canonical text of each line (what ``build --addin`` writes into model.py)."""
    return [line.text() for line in lines]
