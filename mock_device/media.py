"""Images the device makes (captures) and checks (downloaded faces, screen savers).

Captures carry real JPEG bytes drawn with Pillow, so a server that decodes
them sees a picture, not a placeholder. They are small and cached per size:
a fleet of a thousand devices must not spend its CPU drawing faces.
"""

from __future__ import annotations

import base64
import functools
import io

from PIL import Image, ImageDraw, UnidentifiedImageError

_FORMAT_OF_MEDIA = {"image/jpeg": "JPEG", "image/png": "PNG"}


@functools.lru_cache(maxsize=16)
def capture_jpeg(seed: int = 0, size: tuple[int, int] = (96, 112)) -> bytes:
    """A face-like JPEG (an oval on a background whose tint depends on ``seed``)."""
    width, height = size
    tint = (seed * 47) % 200
    image = Image.new("RGB", size, (40 + tint // 2, 60, 90 + tint // 3))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.15, width * 0.8, height * 0.85), fill=(224, 182, 150))
    for eye_x in (0.38, 0.62):
        draw.ellipse((width * eye_x - 4, height * 0.4 - 3, width * eye_x + 4, height * 0.4 + 3), fill=(30, 30, 30))
    draw.arc((width * 0.35, height * 0.55, width * 0.65, height * 0.72), 20, 160, fill=(120, 40, 40), width=2)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def tiny_png() -> bytes:
    """A PNG, for the fault that sends the wrong image format."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_image(data: bytes, media_type: str) -> str | None:
    """None when ``data`` is an image of ``media_type``; otherwise why not."""
    wanted = _FORMAT_OF_MEDIA.get(media_type)
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:
            found = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"not an image ({exc.__class__.__name__})"
    if wanted and found != wanted:
        return f"a {found} image where {media_type} is required"
    return None
