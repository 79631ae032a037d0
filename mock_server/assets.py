"""The files tasks point to: face JPEGs, screen-saver PNGs, a firmware image.

The defaults are generated at start (Pillow) so the repository ships no
binaries, and served from memory: a server that is killed (kill -9, the
OOM killer) leaves no folder of them behind in the temporary directory, as
it did when they were files there. A user folder (``--assets DIR``) is
served instead when given (the defaults written into it where missing).
Every name is resolved inside the folder: ``..``, absolute paths, encoded
separators and symlinks leading out are refused.

Nothing is written through a symlink: a default is created only where no
file (and no link) of that name exists, with ``O_EXCL | O_NOFOLLOW`` relative
to the folder's own descriptor; ``--firmware`` is served from where it is,
never copied into the folder.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageDraw

from facecert.mock_server.safefiles import write_new_file

# What the default asset for each kind of x-download annotation is called.
DEFAULT_FOR_KIND = {"image/jpeg": "face.jpg", "image/png": "screensaver.png", "firmware": "firmware.bin"}
FIRMWARE_SIZE = 1024 * 1024
_FIRMWARE_LINE = b"FACECERT TEST FILE - NOT A FIRMWARE IMAGE FOR ANY DEVICE; A DEVICE MUST REJECT IT.\n"
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bin": "application/octet-stream"}


def face_jpeg(size: int = 160) -> bytes:
    """A drawn face, enough for a device to decode (it will find no real face)."""
    image = Image.new("RGB", (size, size), (210, 180, 150))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 15, size - 20, size - 10), fill=(235, 200, 170), outline=(90, 60, 40), width=3)
    draw.ellipse((50, 60, 65, 75), fill=(40, 40, 40))
    draw.ellipse((size - 65, 60, size - 50, 75), fill=(40, 40, 40))
    draw.arc((55, 90, size - 55, 125), 20, 160, fill=(120, 40, 40), width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def screensaver_png(width: int = 320, height: int = 240) -> bytes:
    image = Image.new("RGB", (width, height), (20, 60, 110))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, width - 10, height - 10), outline=(240, 240, 240), width=4)
    draw.text((30, height // 2 - 6), "facecert screen saver", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def firmware_image() -> bytes:
    """Harmless bytes a device must refuse as not-for-it (no vendor header)."""
    return (_FIRMWARE_LINE * (FIRMWARE_SIZE // len(_FIRMWARE_LINE) + 1))[:FIRMWARE_SIZE]


@dataclass(frozen=True)
class Asset:
    """One downloadable file: a file on disk, or a generated default held in memory."""

    name: str
    size: int
    path: Path | None = None
    data: bytes = b""

    def open(self) -> BinaryIO:
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.data)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(Path(self.name).suffix.lower(), "application/octet-stream")


def _defaults() -> dict[str, Callable[[], bytes]]:
    return {"face.jpg": face_jpeg, "screensaver.png": screensaver_png, "firmware.bin": firmware_image}


class Assets:
    """A folder of downloadable files with confined name resolution (or, without a folder, the
    generated defaults in memory)."""

    def __init__(self, folder: str | Path | None = None, firmware: str | Path | None = None) -> None:
        # --firmware is served as firmware.bin from where it is (nothing copied, nothing overwritten)
        self.firmware = Path(firmware).resolve() if firmware else None
        self.folder = Path(folder).resolve() if folder is not None else None
        self._made: dict[str, bytes] = {}
        if self.folder is None:
            self._made = {name: make() for name, make in _defaults().items() if not self._is_given_firmware(name)}
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_defaults(self.folder)

    def _is_given_firmware(self, name: str) -> bool:
        return name == "firmware.bin" and self.firmware is not None

    def _write_defaults(self, folder: Path) -> None:
        for name, make in _defaults().items():
            if not self._is_given_firmware(name) and not os.path.lexists(folder / name):
                write_new_file(folder, name, make())

    def resolve(self, name: str) -> Asset | None:
        """The file for a request path below /assets/, or None when it is not
        a plain file inside the folder (traversal, absolute, missing)."""
        if not name or "\\" in name or "\x00" in name or name.startswith("/"):
            return None
        firmware = self.firmware
        if name == "firmware.bin" and firmware is not None:
            return _on_disk(name, firmware) if firmware.is_file() else None
        if self.folder is None:
            data = self._made.get(name)
            return Asset(name, len(data), data=data) if data is not None else None
        path = self._inside(self.folder, name)
        return _on_disk(name, path) if path is not None else None

    @staticmethod
    def _inside(folder: Path, name: str) -> Path | None:
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return None
        try:
            candidate = (folder / name).resolve()
            if not candidate.is_relative_to(folder) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # a name the filesystem refuses (too long, odd bytes): no such file
            return None
        return candidate

    def names(self) -> list[str]:
        folder = self.folder
        if folder is None:
            found = set(self._made)
        else:
            found = {
                p.relative_to(folder).as_posix()
                for p in folder.rglob("*")
                if p.is_file() and self.resolve(p.relative_to(folder).as_posix()) is not None
            }
        return sorted(found | ({"firmware.bin"} if self.firmware is not None else set()))


def _on_disk(name: str, path: Path) -> Asset | None:
    try:
        return Asset(name, path.stat().st_size, path=path)
    except OSError:  # gone between the look and the stat
        return None
