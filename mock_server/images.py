"""Thumbnails of capture images, with the decoding work bounded.

A JPEG's header can claim 65500×65500 pixels in a few hundred bytes; Pillow
refuses such a file when it is opened (``DecompressionBombError`` beyond twice
``Image.MAX_IMAGE_PIXELS``, a warning beyond once). Both are caught here and
an image past Pillow's bound is refused before any pixel is decoded. JPEGs are
decoded in draft mode (1/2..1/8 scale, the decoder's own shortcut), so a
thumbnail costs a fraction of the full image; what is decoded stays below
``DECODE_MAX_PIXELS``.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

DECODE_MAX_PIXELS = 16 * 1024 * 1024  # pixels actually decoded for one thumbnail (a 4096×4096 frame)
MIN_EDGE, MAX_EDGE = 8, 1024


class ImageRefused(ValueError):
    """The image cannot be thumbnailed within the bounds (the API answers 422)."""


def pixel_bound() -> int:
    """Pillow's decompression-bomb bound, the largest image we decode at all."""
    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def open_bounded(data: bytes) -> Image.Image:
    """The image, opened lazily (header only), or ImageRefused."""
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"the image claims too many pixels to decode: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageRefused(f"not a decodable image: {exc}") from None
    width, height = image.size
    if width * height > pixel_bound():
        raise ImageRefused(
            f"the image claims {width}×{height} pixels, more than {pixel_bound():,} (Pillow's decompression-bomb bound)"
        )
    return image


def thumbnail(data: bytes, edge: int) -> bytes:
    """A JPEG at most ``edge`` pixels wide and high."""
    edge = max(MIN_EDGE, min(MAX_EDGE, edge))
    image = open_bounded(data)
    try:
        image.draft("RGB", (edge, edge))  # JPEG: decode at reduced scale; other formats ignore it
        width, height = image.size
        if width * height > DECODE_MAX_PIXELS:
            raise ImageRefused(
                f"a thumbnail of this {width}×{height} image would decode more than {DECODE_MAX_PIXELS:,} pixels"
            )
        image.thumbnail((edge, edge))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=80)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, ValueError, SyntaxError) as exc:
        raise ImageRefused(f"the image cannot be decoded: {exc}") from None
    return out.getvalue()
