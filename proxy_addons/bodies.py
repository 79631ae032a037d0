"""Bodies as the addon judges them: never more than ``max_body`` bytes in memory.

Two things would otherwise cost memory without bound. mitmproxy buffers a
whole body before its hooks see it, and a body it buffers is sent on only
once complete (bodies the upstream refuses half-way then get mitmproxy's 502
instead of the upstream's own answer). And ``message.content`` inflates a
``Content-Encoding`` in one go: a 130 KB gzip body becomes gigabytes.

So bodies of unknown length or above :data:`STREAM_ABOVE` are streamed: a
:class:`BodyTap` passes every chunk on unchanged and keeps at most
``max_body + 1`` bytes (only :data:`EVIDENCE` bytes once the body is known to be
larger). Encoded bodies are inflated here, from ``raw_content`` or the tap, by
:func:`inflate`, which stops one byte past ``max_body``. A body over the limit
reaches the engine as :class:`Truncated`: its start, with ``len()`` giving the
size the engine's MSG-TOO-LARGE check judges.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Buffer, Callable
from dataclasses import dataclass

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # mitmproxy depends on the backport below 3.14
    from backports import zstd

#: bodies larger than this, or of unknown length (chunked, read until close), are streamed, not buffered
STREAM_ABOVE = 1024 * 1024
#: what is kept of a body known to be over the limit: the start, for the record
EVIDENCE = 64 * 1024


class BodyTap:
    """mitmproxy's ``stream`` callable: hands each chunk on unchanged, keeps the body's start, counts its size.

    It must never raise: an exception here would break the connection inside
    mitmproxy's protocol layer, so a failure only marks the tap ``broken``.
    """

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        self.declared = declared  # Content-Length, when the message has one
        self.seen = 0
        self.kept = bytearray()
        self.broken = ""
        self.released = False

    @property
    def size(self) -> int:
        """The body's size as far as known: an upstream may answer (413) before the whole upload passed."""
        return max(self.seen, self.declared or 0)

    def __call__(self, chunk: bytes) -> bytes:
        try:
            self.seen += len(chunk)
            if self.released:
                pass  # the snapshot was taken (an early answer): only counting now
            elif self.seen > self.limit:
                del self.kept[EVIDENCE:]  # over the limit: only the evidence stays
                if len(self.kept) < EVIDENCE:
                    self.kept += chunk[: EVIDENCE - len(self.kept)]
            else:
                self.kept += chunk
        except Exception as exc:  # noqa: BLE001 - the bytes must flow whatever happens to our copy
            self.broken = f"{type(exc).__name__}: {exc}"
        return chunk

    def release(self) -> bytes:
        """What was kept, as bytes; the tap's own copy is freed (the flow may live on a while)."""
        kept, self.kept, self.released = bytes(self.kept), bytearray(), True
        return kept


class Truncated(bytes):
    """The start of a body larger than the addon keeps.

    ``len()`` is the body's size (the size on the wire, or ``max_body + 1`` when
    inflating stopped at the limit), so the engine's size check judges the
    real figure; the bytes are only the start, kept as evidence. It is never
    "empty" after ``strip()``: a 30 MB body of spaces is too large, not empty.
    """

    size: int

    def __new__(cls, start: bytes, size: int) -> Truncated:
        obj = super().__new__(cls, start)
        obj.size = size
        return obj

    def __len__(self) -> int:
        return self.size

    def strip(self, chars: Buffer | None = None) -> Truncated:
        return self

    @property
    def kept(self) -> int:
        return super().__len__()


@dataclass(frozen=True)
class Inflated:
    """A body after its Content-Encoding: whole, or its start when it inflates past the limit."""

    body: bytes
    too_large: bool = False
    error: str = ""  # why it could not be decoded; ``body`` is then the bytes as sent


# each decoder: (data, max_length) -> (at most max_length bytes of output)
Decoder = Callable[[bytes, int], bytes]


def _zlib(wbits: int) -> Decoder:
    def decode(data: bytes, max_length: int) -> bytes:
        return zlib.decompressobj(wbits).decompress(data, max_length)

    return decode


def _deflate(data: bytes, max_length: int) -> bytes:
    """zlib-wrapped deflate, or raw deflate as some servers send it (mitmproxy accepts both too)."""
    try:
        return _zlib(zlib.MAX_WBITS)(data, max_length)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(data, max_length)


def _brotli(data: bytes, max_length: int) -> bytes:
    return brotli.Decompressor().process(data, output_buffer_limit=max_length)[:max_length]


def _zstd(data: bytes, max_length: int) -> bytes:
    """Every frame, as mitmproxy decodes them, up to ``max_length`` bytes in all."""
    out = bytearray()
    while data and len(out) < max_length:
        decoder = zstd.ZstdDecompressor()
        out += decoder.decompress(data, max_length - len(out))
        if not decoder.eof:
            break
        data = decoder.unused_data
    return bytes(out)


DECODERS: dict[str, Decoder] = {
    "gzip": _zlib(32 + zlib.MAX_WBITS),
    "x-gzip": _zlib(32 + zlib.MAX_WBITS),  # gzip or zlib header, detected
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
_ERRORS = (zlib.error, brotli.error, zstd.ZstdError, EOFError, ValueError, MemoryError)


def codings(content_encoding: str) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied; identity dropped."""
    return [c for c in (part.strip().lower() for part in content_encoding.split(",")) if c and c != "identity"]


def inflate(raw: bytes, content_encoding: str, limit: int) -> Inflated:
    """Undo the body's codings (last applied first), never producing more than ``limit + 1`` bytes per step."""
    body = raw
    for coding in reversed(codings(content_encoding)):
        decoder = DECODERS.get(coding)
        if decoder is None:
            return Inflated(raw, error=f"Content-Encoding {coding!r} is not one facecert decodes")
        try:
            body = decoder(body, limit + 1)
        except _ERRORS as exc:
            return Inflated(raw, error=f"{coding} data could not be decoded ({type(exc).__name__}: {exc})")
        if len(body) > limit:
            return Inflated(body[:EVIDENCE], too_large=True)
    return Inflated(body)


@dataclass(frozen=True)
class Body:
    """What the engine gets for one body, and what only the tap knows about it."""

    data: bytes
    size: int  # bytes on the wire
    note: str = ""  # added to the engine's finding about this body
    replaces: bool = False  # the note is the whole message (the engine's size figure would mislead)


def judged_body(kept: bytes, size: int, content_encoding: str, limit: int) -> Body:
    """The body to judge from ``kept`` (all of it, or a tap's start) of a body of ``size`` bytes on the wire."""
    if size > limit:
        return Body(Truncated(kept[:EVIDENCE], size), size)
    if not codings(content_encoding):
        return Body(kept, size)
    inflated = inflate(kept, content_encoding, limit)
    if inflated.too_large:
        return Body(
            Truncated(inflated.body, limit + 1),
            size,
            replaces=True,
            note=f"body: {size:,} bytes of Content-Encoding {content_encoding!r} inflate to more than the "
            f"limit of {limit:,} bytes (a decompression bomb?); facecert stopped inflating there",
        )
    if inflated.error:
        return Body(inflated.body, size, note=f"(judged as sent: {inflated.error})")
    return Body(inflated.body, size)
