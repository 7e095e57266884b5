"""Where uploaded files' bytes live: :class:`FileStorage`, content-addressed by SHA-256 (one
copy of equal bytes however often they are uploaded), and :class:`LocalDiskStorage`, the
default, under ``<data_dir>/files``.

An object store (S3 and the like) would implement the same three methods. The local disk is
the node's own: several nodes need a shared volume (or another implementation).

An upload is written to a temporary file while it is hashed and counted, and renamed into
place only when complete and within the limit, so a reader never sees a partial file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from magpie.errors import PayloadTooLarge

__all__ = ["FileStorage", "LocalDiskStorage", "Stored"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Stored:
    """What :meth:`FileStorage.put` kept: the bytes' SHA-256 (hex), their size, and where
    they are now (to sniff them)."""

    sha256: str
    size: int
    path: Path


class FileStorage(Protocol):
    """Content-addressed file bytes."""

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> Stored:
        """Keep the bytes of ``chunks``; :class:`~magpie.errors.PayloadTooLarge` (nothing
        kept) above ``max_bytes``."""
        ...

    def path(self, sha256: str) -> Path | None:
        """The local path of the bytes with this digest (``None`` if not kept)."""
        ...


class LocalDiskStorage:
    """Files under ``root`` as ``ab/cd/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _final(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def path(self, sha256: str) -> Path | None:
        """The file of ``sha256``, if kept."""
        if not _SHA256.fullmatch(sha256):
            return None
        final = self._final(sha256)
        return final if final.is_file() else None

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> Stored:
        """Write to a temporary file while hashing, then rename into place."""
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=tmp_dir)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"a file is at most {max_bytes} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(os.fsync, out.fileno())
            sha = digest.hexdigest()
            await asyncio.to_thread(self._place, Path(name), sha)
        except BaseException:
            await asyncio.to_thread(_remove, Path(name))
            raise
        return Stored(sha, size, self._final(sha))

    def _place(self, tmp: Path, sha256: str) -> None:
        final = self._final(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink()  # the same bytes are kept already
        else:
            os.replace(tmp, final)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
