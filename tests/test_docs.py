"""Every shell block of README.md and docs/*.md does what the page says (issue 18).

The pages mark their fenced blocks by language:

- ```` ```shell ````: commands a user is told to run, one a line (``# ...`` comments ignored); each
  must exit with code 0.
- ```` ```console ````: a transcript: ``$ COMMAND`` lines, each followed by lines it prints; each
  command must exit with code 0 (or the code a ``[exit N]`` line states) and print the stated
  lines, in order, as whole lines (runs of spaces are one space; ``...`` inside a line stands for
  anything).
- any other language (``text``, ``python``, ``json``, ``yaml``, ``toml``): layouts, sample
  outputs and code, not run here; a block without a language is refused, so nothing is left out
  unnoticed.

HTML comments steer the run and are part of the page:

- ``<!-- docs-test: skip: REASON -->`` right above a shell or console block: not run, for the
  reason given (it cannot run offline, or it stands for the reader's own data).
- ``<!-- docs-test: run: CMD && CMD -->``: commands the page takes as done (the state its blocks
  start from), run at that point.
- ``<!-- docs-test: numbers vary -->`` right above a console block: its numbers (timings,
  scores) match any number.

Each page runs top to bottom in a folder of its own, holding links to the repository's ``docs/``
and ``.venv`` (so ``cp docs/examples/...`` and ``.venv/bin/otxlike`` work as they do in a
checkout). ``cd`` changes the folder for the rest of the page. To stay short, training runs
one epoch on the first ``TRAIN_IMAGES`` training images (``--epochs N`` becomes ``--epochs 1``,
a bare ``otxlike train`` gets it, and ``--cfg-options train_dataloader.dataset.indices=N``), and
``<time>`` in a path is the newest folder that matches. Each page runs in a Python process of
its own; its ``otxlike`` commands run in that process through typer's test runner, except
``optimize`` (NNCF, run as ``python -m otxlike``: see tests/test_deploy.py); the others run in
bash.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = ("shell", "console")
OTHER_LANGUAGES = ("text", "python", "json", "yaml", "toml")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*docs-test:\s*(?P<kind>skip|run|numbers vary)\s*:?\s*(?P<text>.*?)\s*-->", re.S)
IN_PROCESS_EXCEPTIONS = ("optimize",)
#: Training in a page runs one epoch on the first this many training images (mmengine's
#: ``BaseDataset(indices=N)``): the commands and what they print are the same, in a tenth of the time.
TRAIN_IMAGES = 160
INDICES = f"train_dataloader.dataset.indices={TRAIN_IMAGES}"


@dataclass
class Block:
    """One fenced block of a page: its language, body, line number and the marks above it."""

    lang: str
    body: str
    line: int
    skip: str | None = None
    numbers_vary: bool = False
    run_before: list[str] = field(default_factory=list)


def blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page`` with their marks; ``run`` marks become hidden commands of the
    next block."""
    text = (REPO / page).read_text(encoding="utf-8")
    found, pending, start = [], [], 0
    for match in FENCE.finditer(text):
        before = text[start:match.start()]
        block = Block(match["lang"].strip(), match["body"], text.count("\n", 0, match.start()) + 1)
        marks = list(MARK.finditer(before))
        for mark in marks:
            if mark["kind"] == "run":
                pending.append(mark["text"])
        for mark in reversed(marks):  # marks right above the fence: nothing but marks in between
            if MARK.sub("", before[mark.end():]).strip():
                break
            if mark["kind"] == "skip":
                block.skip = mark["text"]
            elif mark["kind"] == "numbers vary":
                block.numbers_vary = True
        block.run_before, pending, start = pending, [], match.end()
        found.append(block)
    return found


def commands(block: Block) -> list[tuple[str, list[str], int]]:
    """``(command, stated output lines, stated exit code)`` of a shell or console block."""
    if block.lang == "shell":
        lines = [line.strip() for line in block.body.splitlines()]
        return [(line, [], 0) for line in lines if line and not line.startswith("#")]
    steps: list[tuple[str, list[str], int]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].strip(), [], 0))
        elif steps and (code := re.fullmatch(r"\[exit (\d+)\]", line.strip())):
            steps[-1] = (steps[-1][0], steps[-1][1], int(code[1]))
        elif steps and line.strip():
            steps[-1][1].append(line.strip())
    return steps


class Session:
    """A page's folder, and the commands run in it as a user would."""

    def __init__(self, root: Path):
        self.cwd = root
        (root / "docs").symlink_to(REPO / "docs")
        (root / ".venv").symlink_to(Path(sys.prefix))
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "200"}

    def expand(self, command: str) -> str:
        """One epoch for training; ``<time>`` paths to the newest match."""
        words = shlex.split(command, comments=True)
        if words[:2] == ["otxlike", "train"] and "--resume" not in words:
            if "--epochs" in words:
                words[words.index("--epochs") + 1] = "1"
            else:
                words.append("--epochs=1")
            words += ["--cfg-options", INDICES]
        for i, word in enumerate(words):
            if "<time>" in word:
                matches = sorted(self.cwd.glob(word.replace("<time>", "*")))
                assert matches, f"nothing matches {word} in {self.cwd}"
                words[i] = str(matches[-1].relative_to(self.cwd))
        return shlex.join(words)

    def run(self, command: str) -> tuple[int, str]:
        """Run one command line (parts joined by ``&&``); returns the exit code and the output."""
        output, code = "", 0
        for part in command.split("&&"):
            part = part.strip()
            words = shlex.split(part, comments=True)
            if not words:
                continue
            if words[0] == "cd":
                self.cwd = (self.cwd / words[1]).resolve()
                assert self.cwd.is_dir(), f"cd {words[1]}: no such folder"
                continue
            simple = not re.search(r"[|<>;$`]", part)
            if words[0] == "otxlike" and simple and not set(words[1:2]) & set(IN_PROCESS_EXCEPTIONS):
                code, out = self.in_process(shlex.split(self.expand(part)))
                out = out.replace(f"cfg-options {INDICES}, ", "")  # what the test added, not the page
            else:
                if words[0] == "otxlike":
                    part = f"{shlex.quote(sys.executable)} -m otxlike {self.expand(part)[len('otxlike'):]}"
                done = subprocess.run(["bash", "-c", part], cwd=self.cwd, env=self.env, capture_output=True,
                                      text=True)
                code, out = done.returncode, done.stdout + done.stderr
            output += out
            if code != 0:
                break
        return code, output

    def in_process(self, words: list[str]) -> tuple[int, str]:
        from typer.testing import CliRunner

        from otxlike.cli.app import app

        old = os.getcwd()
        os.chdir(self.cwd)
        try:
            result = CliRunner().invoke(app, words[1:], env={"COLUMNS": "200"})
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output


def stated(line: str, numbers_vary: bool) -> re.Pattern:
    """The pattern a stated output line stands for (spaces loose, ``...`` anything, maybe numbers)."""
    parts = []
    for token in re.split(r"(\.\.\.|\s+|\d[\d,.]*\d|\d)", line):
        if token == "...":
            parts.append(".*")
        elif token and token.isspace():
            parts.append(r"\s+")
        elif numbers_vary and token and token[0].isdigit():
            parts.append(r"-?\d[\d,.]*")
        elif token:
            parts.append(re.escape(token))
    return re.compile(r"\s*" + "".join(parts) + r"\s*")


def check_output(output: str, lines: list[str], numbers_vary: bool) -> list[str]:
    """The stated lines missing from ``output`` (each must match a whole line, in order)."""
    printed = [line.rstrip() for line in output.splitlines()]
    missing, at = [], 0
    for line in lines:
        pattern = stated(line, numbers_vary)
        hit = next((i for i in range(at, len(printed)) if pattern.fullmatch(printed[i])), None)
        if hit is None:
            missing.append(line)
        else:
            at = hit + 1
    return missing


def test_every_block_has_a_language_and_every_skip_a_reason():
    """A block without a language would be neither run nor knowingly left out."""
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in SHELL_LANGUAGES + OTHER_LANGUAGES:
                problems.append(f"{page}:{block.line}: language {block.lang!r} (use one of "
                                f"{', '.join(SHELL_LANGUAGES + OTHER_LANGUAGES)})")
            if block.skip is not None and (block.lang not in SHELL_LANGUAGES or not block.skip):
                problems.append(f"{page}:{block.line}: a skip mark needs a reason and a shell/console block")
    assert problems == []


def test_stated_lines_match_as_the_module_says():
    """The matching rules on fixed strings (not on otxlike's output)."""
    output = "[*] Wrote 1438 train and 359 val images of 10 classes\n│ 1   │ custom.a     │ x │\n"
    assert check_output(output, ["[*] Wrote 1438 train and 359 val images of 10 classes"], False) == []
    assert check_output(output, ["[*] Wrote 1437 train and 360 val images of 10 classes"], False) != []
    assert check_output(output, ["[*] Wrote 1437 train and 360 val images of 10 classes"], True) == []
    assert check_output(output, ["│ 1 │ custom.a │ ..."], False) == []
    assert check_output(output, ["custom.a"], False) != []  # whole lines only
    assert check_output(output, ["│ 1 │ custom.a │ ...", "[*] Wrote ..."], False) != []  # in order


def runnable(page: str) -> bool:
    return any(b.lang in SHELL_LANGUAGES and b.skip is None for b in blocks(page))


def run_page(page: str, root: Path) -> None:
    """Run ``page``'s blocks in the empty folder ``root``.

    Raises:
        AssertionError: A command exited with another code than the page says, or did not print
            a line the page states.
    """
    session = Session(root)
    for block in blocks(page):
        for command in block.run_before:
            code, output = session.run(command)
            assert code == 0, f"{page}:{block.line}: hidden 'run' {command!r} exited {code}:\n{output[-3000:]}"
        if block.lang not in SHELL_LANGUAGES or block.skip is not None:
            continue
        for command, lines, expected in commands(block):
            code, output = session.run(command)
            where = f"{page}:{block.line}: {command!r}"
            assert code == expected, f"{where} exited {code}, the page says {expected}:\n{output[-3000:]}"
            missing = check_output(output, lines, block.numbers_vary)
            assert missing == [], f"{where} did not print {missing}; it printed:\n{output[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in PAGES if runnable(page)])
def test_page_runs_as_written(page, tmp_path):
    """Each page in a Python process of its own, as a user's shell runs it: what earlier tests
    registered in this process (custom backbones, heads) would show up in its tables."""
    done = subprocess.run([sys.executable, __file__, page, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, f"{page}:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"


if __name__ == "__main__":
    run_page(sys.argv[1], Path(sys.argv[2]))
