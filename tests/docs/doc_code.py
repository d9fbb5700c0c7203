"""The code a user can copy from README.md and docs/**/*.md, found once for the doc tests
(tests/docs/test_doc_snippets.py, tests/docs/test_doc_shell_commands.py), and the ``diffrep`` parser they
check it against.

Import as ``from doc_code import ...``: pytest puts ``tests/docs/`` on ``sys.path`` (``tests/`` has no
packages, so this module's name is unique in the tree).
"""

from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)  # groups: the language, the code


def line_at(text: str, pos: int) -> int:
    """The 1-based line number of ``text[pos]``."""
    return text.count("\n", 0, pos) + 1


@functools.lru_cache(maxsize=None)
def code_texts() -> tuple[tuple[str, str, str], ...]:
    """(``page:line``, code, the paragraph around it) of every code line a user could copy: lines of fenced
    non-Python, non-YAML blocks, indented code lines, and inline code spans (which may wrap one line)."""
    out = []
    for page in PAGES:
        text, rel = page.read_text(), page.relative_to(ROOT)
        for m in FENCE.finditer(text):
            if m.group(1) not in ("python", "yaml"):
                first = line_at(text, m.start(2))
                out += [(f"{rel}:{first + i}", line, m.group(2)) for i, line in enumerate(m.group(2).splitlines())]
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # same line numbers, no fenced code
        paragraphs = [(p.start(), p.end()) for p in re.finditer(r"(?:[^\n]+\n?)+", prose)]

        def around(pos):
            return next((prose[a:b] for a, b in paragraphs if a <= pos < b), "")

        out += [(f"{rel}:{line_at(prose, m.start())}", m.group(1), around(m.start()))
                for m in re.finditer(r"^ {4}(\S.*)$", prose, re.M)]
        out += [(f"{rel}:{line_at(prose, m.start())}", m.group(1).replace("\n", " "), around(m.start()))
                for m in re.finditer(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose)]
    return tuple(out)


@functools.lru_cache(maxsize=None)
def cli_parser() -> argparse.ArgumentParser:
    """The ``diffrep`` parser (built once: each build imports and registers every verb)."""
    from diffrep.cli import build_parser

    return build_parser()
