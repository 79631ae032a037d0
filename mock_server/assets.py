"""The files tasks point to: face JPEGs, screen-saver PNGs, a firmware image.

The defaults are generated at start (Pillow) so the repository ships no
binaries; a user folder (``--assets DIR``) is served instead when given.
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
import tempfile
from collections.abc import Callable
from pathlib import Path

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


class Assets:
    """A folder of downloadable files with confined name resolution."""

    def __init__(self, folder: str | Path | None = None, firmware: str | Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="facecert-assets-")
            folder = self._tmp.name
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        # --firmware is served as firmware.bin from where it is (nothing copied, nothing overwritten)
        self.firmware = Path(firmware).resolve() if firmware else None
        self._write_defaults()

    def _write_defaults(self) -> None:
        makers: dict[str, Callable[[], bytes]] = {
            "face.jpg": face_jpeg,
            "screensaver.png": screensaver_png,
            "firmware.bin": firmware_image,
        }
        for name, make in makers.items():
            if name == "firmware.bin" and self.firmware is not None:
                continue
            if not os.path.lexists(self.folder / name):
                write_new_file(self.folder, name, make())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def resolve(self, name: str) -> Path | None:
        """The file for a request path below /assets/, or None when it is not
        a plain file inside the folder (traversal, absolute, missing)."""
        if not name or "\\" in name or "\x00" in name or name.startswith("/"):
            return None
        if name == "firmware.bin" and self.firmware is not None:
            return self.firmware if self.firmware.is_file() else None
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return None
        try:
            candidate = (self.folder / name).resolve()
            if not candidate.is_relative_to(self.folder) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # a name the filesystem refuses (too long, odd bytes): no such file
            return None
        return candidate

    def names(self) -> list[str]:
        found = {
            p.relative_to(self.folder).as_posix()
            for p in self.folder.rglob("*")
            if p.is_file() and self.resolve(p.relative_to(self.folder).as_posix()) is not None
        }
        return sorted(found | ({"firmware.bin"} if self.firmware is not None else set()))

    @staticmethod
    def media_type(path: Path) -> str:
        return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
