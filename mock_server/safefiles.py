"""Files the server writes, never through a symlink.

A planted link in a folder we write to (the asset folder, the folder of the
session database or the port file) must not make us write somewhere else:
new files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the
folder's own descriptor, and a file that is rewritten is written anew beside
it and renamed over the name (a rename replaces a link, it does not follow it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC


def _plain_name(name: str) -> str:
    if "/" in name or "\x00" in name or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a file name")
    return name


def write_new_file(folder: Path, name: str, data: bytes, mode: int = 0o644) -> bool:
    """Create ``folder/name`` with ``data`` unless something (a file, a link,
    even a dangling one) already has that name. Returns whether it was written."""
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        try:
            fd = os.open(_plain_name(name), NEW_FILE, mode, dir_fd=folder_fd)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    finally:
        os.close(folder_fd)


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` anew: a fresh file beside it, renamed over the name."""
    folder, name = path.parent, _plain_name(path.name)
    temporary = f".{name}.{secrets.token_hex(6)}.tmp"
    write_new_file(folder, temporary, data, mode)
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError:
        os.unlink(temporary, dir_fd=folder_fd)
        raise
    finally:
        os.close(folder_fd)
