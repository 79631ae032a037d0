"""The files we write (captures, reports, evidence, redacted copies) are written fresh and
never through a symlink: a planted link in the output folder (``session.har -> ~/.bashrc``)
must not redirect our write. The text goes to a new temporary file (``O_EXCL | O_NOFOLLOW``)
that is then renamed over the target, which replaces a link rather than
following it; a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def replace_with(path: Path, write: Callable[[TextIO], object]) -> Path:
    """Have ``write`` fill a fresh temporary UTF-8 file (what it returns is ignored), then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if os.path.lexists(tmp):
        tmp.unlink()  # a stale temporary file, or a link planted in its place
    try:
        with os.fdopen(os.open(tmp, NEW, 0o644), "w", encoding="utf-8") as out:
            write(out)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return path
