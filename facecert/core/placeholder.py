"""The text a redacted biometric value becomes, and how it reads back (:mod:`facecert.core.redact`
writes it; the image rules in :mod:`facecert.core.rules.message` judge it).

Only the format lives here, below both, so that neither imports the other for it::

    facecert-redacted:image/jpeg;bytes=1234;head=ffd8ffe000104a46;px=640x480;sha256=<64 hex>
    facecert-redacted:invalid-base64;chars=17;sha256=<sha256 of the text>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PREFIX = "facecert-redacted:"
_IMAGE = re.compile(
    r"^(?P<media>[a-z0-9.+-]+/[a-z0-9.+-]+);bytes=(?P<bytes>\d{1,12});head=(?P<head>[0-9a-f]{0,16});"
    r"(?:px=(?P<w>\d{1,6})x(?P<h>\d{1,6})|pixels=(?P<pixels>\d{1,15})|px=\?);sha256=(?P<sha>[0-9a-f]{64})$"
)
_INVALID = re.compile(r"^invalid-base64;chars=(?P<chars>\d{1,12});sha256=(?P<sha>[0-9a-f]{64})$")


@dataclass(frozen=True)
class Placeholder:
    """What a biometric placeholder records: enough for IMG-BASE64 and IMG-FORMAT."""

    valid_base64: bool
    sha256: str
    media: str = ""  # what the decoded bytes are: a MAGIC media type, or application/octet-stream
    size: int = 0  # decoded bytes
    head: bytes = b""  # the first 8 decoded bytes (a header, not a face)
    pixels: int | None = None  # None: Pillow could not read the header
    chars: int = 0  # length of the text that was no base64


def is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_placeholder(value: str) -> Placeholder:
    """The placeholder's record; ValueError says what is wrong with one that was tampered with."""
    body = value[len(PREFIX) :] if value.startswith(PREFIX) else None
    if body is None:
        raise ValueError("does not start with " + PREFIX)
    invalid = _INVALID.match(body)
    if invalid:
        return Placeholder(False, invalid["sha"], chars=int(invalid["chars"]))
    image = _IMAGE.match(body)
    if image is None:
        raise ValueError(
            "is not media;bytes=N;head=HEX;px=WxH|pixels=N|px=?;sha256=64 hex nor invalid-base64;chars=N;sha256=64 hex"
        )
    head = bytes.fromhex(image["head"]) if len(image["head"]) % 2 == 0 else None
    if head is None:
        raise ValueError("head is an odd number of hex digits")
    size = int(image["bytes"])
    if len(head) > size or (size >= 8 and len(head) != 8):
        raise ValueError(f"head holds {len(head)} bytes of a {size}-byte image")
    pixels = int(image["w"]) * int(image["h"]) if image["w"] else int(image["pixels"]) if image["pixels"] else None
    return Placeholder(True, image["sha"], media=image["media"], size=size, head=head, pixels=pixels)
