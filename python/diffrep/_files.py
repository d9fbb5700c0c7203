"""Writing a file so that no reader ever sees half of it (docs/architecture.md, "Run folders")."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder renamed over it: a run killed
    mid-write leaves the earlier file whole (or none), never a cut one that still parses (a YAML or JSONL
    file cut at a line does). Returns the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"write_text_atomic: path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"write_text_atomic: text must be a str, got {type(text).__name__}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
