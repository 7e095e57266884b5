"""What a file is, from its bytes (the client's word is never taken).

Images that browsers show inline — PNG, JPEG, GIF, WebP — are recognised and *opened* with
Pillow (a well-kept decoder with a decompression-bomb guard), which also gives their
dimensions; anything Pillow cannot open is not served as an image. Other files get the type
``filetype`` recognises from their magic numbers, or ``application/octet-stream``; they are
always downloaded as attachments, never rendered inline.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import filetype  # type: ignore[import-untyped]
from PIL import Image

__all__ = ["INLINE_IMAGES", "Sniffed", "sniff"]

#: Image types a page may show inline (the only ones served with ``inline``).
INLINE_IMAGES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
#: Bytes looked at to recognise a file that is not an image.
_HEAD = 8192
#: Most pixels an image may have (Pillow's own guard warns at its default, fails at twice).
MAX_PIXELS = 100_000_000


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A file's content type and, for an image, its width and height (0 otherwise)."""

    content_type: str
    width: int = 0
    height: int = 0

    @property
    def image(self) -> bool:
        """Whether it is an image shown inline."""
        return self.content_type in INLINE_IMAGES.values()


def sniff(source: bytes | Path) -> Sniffed:
    """What ``source`` (bytes, or a file) is. Reads a file: run it off the event loop."""
    image = _image(source)
    if image is not None:
        return image
    head = source[:_HEAD] if isinstance(source, bytes) else _read_head(source)
    kind = filetype.guess(head)
    mime = getattr(kind, "mime", "") if kind is not None else ""
    if not isinstance(mime, str) or not mime or mime.startswith("image/"):
        mime = "application/octet-stream"  # an image Pillow could not open is just bytes
    return Sniffed(mime)


def _read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(_HEAD)


def _image(source: bytes | Path) -> Sniffed | None:
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as img:
                fmt = img.format or ""
                width, height = img.size
                if fmt not in INLINE_IMAGES or width * height > MAX_PIXELS:
                    return None
                img.verify()  # the structure is sound (no full decode)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning):
        return None
    return Sniffed(INLINE_IMAGES[fmt], width, height)
