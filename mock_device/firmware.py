"""The simulator's firmware image format, small enough to verify by hand.

The protocol's ``upgrade`` task names a URL and nothing else, so a real
device's check of the file is vendor business. The reference device needs
one it can really perform, so that a server can be shown to hand out a bad
file (the device reports failure) and a good one (success):

    offset  size  content
    0       8     magic  b"FCSIMFW1"
    8       2     n: length of the version string, big-endian
    10      n     version, UTF-8 (becomes the device's software_version)
    10+n    32    SHA-256 of the payload
    42+n    ...   payload (any bytes, may be empty)
"""

from __future__ import annotations

import hashlib
import struct

MAGIC = b"FCSIMFW1"


class FirmwareError(ValueError):
    """The file is not a valid simulator firmware image (the message says why)."""


def build_firmware(version: str, payload: bytes = b"facecert simulated firmware") -> bytes:
    """A valid image: for the mock server's assets, tests and platform teams."""
    raw_version = version.encode("utf-8")
    if not raw_version or len(raw_version) > 0xFFFF:
        raise ValueError("firmware version must be 1..65535 bytes of UTF-8")
    return MAGIC + struct.pack(">H", len(raw_version)) + raw_version + hashlib.sha256(payload).digest() + payload


def verify_firmware(data: bytes) -> str:
    """The version the image installs, or FirmwareError saying what is wrong."""
    if not data.startswith(MAGIC):
        raise FirmwareError(f"not a simulator firmware image (starts {data[:8].hex(' ') or 'empty'})")
    if len(data) < len(MAGIC) + 2:
        raise FirmwareError("firmware image truncated in its header")
    (size,) = struct.unpack_from(">H", data, len(MAGIC))
    start = len(MAGIC) + 2
    digest_at = start + size
    if len(data) < digest_at + 32:
        raise FirmwareError("firmware image truncated before its checksum")
    try:
        version = data[start:digest_at].decode("utf-8")
    except UnicodeDecodeError:
        raise FirmwareError("firmware version is not UTF-8") from None
    payload = data[digest_at + 32 :]
    if hashlib.sha256(payload).digest() != data[digest_at : digest_at + 32]:
        raise FirmwareError("firmware payload does not match its SHA-256 (corrupt download)")
    if not version:
        raise FirmwareError("firmware image names no version")
    return version
