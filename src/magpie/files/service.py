"""Uploads and downloads of files sent in messages (``docs/conversation.md``, item 7).

An upload belongs to one channel: its members (and only they) may download it. It gets a
random ``file_id`` naming, for ever, the same bytes (so a download may be cached as
immutable); the bytes are kept once per SHA-256 by the :class:`~magpie.files.storage.FileStorage`
and sniffed after they are stored (:func:`~magpie.files.sniff.sniff`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from magpie.files.sniff import sniff
from magpie.files.storage import FileStorage
from magpie.store.interface import FileRecord, Store

__all__ = ["FILE_ID", "Files", "file_id_of"]

#: A file id: 32 lowercase hex characters.
FILE_ID = re.compile(r"[0-9a-f]{32}")
#: What a message's ``url`` looks like when it names a Magpie file (absolute or relative).
_FILE_URL = re.compile(r"(?:^|/)file/([0-9a-f]{32})")


def file_id_of(url: object) -> str | None:
    """The file id a message's ``url`` names (``None``: not a Magpie file URL)."""
    if not isinstance(url, str):
        return None
    found = _FILE_URL.search(url)
    return None if found is None or not url.endswith(found.group(1)) else found.group(1)


class Files:
    """Uploads over a store (the records) and a file storage (the bytes). ``max_bytes`` is
    ``upload_max_bytes``; ``clock_ms`` wall time in milliseconds."""

    def __init__(
        self, store: Store, storage: FileStorage, *, max_bytes: int, clock_ms: Callable[[], int]
    ) -> None:
        self._store = store
        self.storage = storage
        self.max_bytes = max_bytes
        self._clock_ms = clock_ms

    async def upload(
        self,
        uploader: str,
        channel_id: str,
        channel_type: int,
        name: str,
        chunks: AsyncIterator[bytes],
    ) -> FileRecord:
        """Keep an upload of ``uploader`` (who may write to the channel) for the channel
        (storage id): 413 above ``max_bytes``."""
        stored = await self.storage.put(chunks, self.max_bytes)
        what = await asyncio.to_thread(sniff, stored.path)
        record = FileRecord(
            file_id=secrets.token_hex(16),
            sha256=stored.sha256,
            size=stored.size,
            content_type=what.content_type,
            name=name,
            width=what.width,
            height=what.height,
            channel_id=channel_id,
            channel_type=channel_type,
            uploader=uploader,
            created_at=self._clock_ms(),
        )
        await self._store.put_file(record)
        return record

    async def get(self, file_id: str) -> FileRecord | None:
        """An upload by id (``None`` for a malformed id too)."""
        if not FILE_ID.fullmatch(file_id):
            return None
        return await self._store.get_file(file_id)

    def path(self, record: FileRecord) -> Path | None:
        """Where the upload's bytes are (``None`` if the storage lost them)."""
        return self.storage.path(record.sha256)
