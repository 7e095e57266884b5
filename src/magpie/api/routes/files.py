"""Files and images (``docs/conversation.md``, item 7).

* ``POST /file/upload?channel_id=&channel_type=&name=&login_uid=`` — the body is the file's
  bytes (any ``Content-Type``; it is not believed). A member of the channel only (403); at
  most ``upload_max_bytes`` (413). Answer: ``{"status":200,"data":{"file_id", "url",
  "name", "size", "content_type", "width", "height", "sha256"}}``.
* ``GET /file/{file_id}?login_uid=`` — the bytes, for members of the upload's channel (404
  for anybody else, as for an unknown id): the sniffed ``Content-Type`` (images PNG, JPEG,
  GIF and WebP ``inline``; anything else an ``attachment``), ``ETag: "<sha256>"``,
  ``Cache-Control: private, max-age=31536000, immutable`` (a file id never names other
  bytes), ``X-Content-Type-Options: nosniff`` and a sandboxing
  ``Content-Security-Policy``; ``If-None-Match`` with the ETag answers 304.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from magpie.api.auth import require_user_or_token
from magpie.api.context import ApiContext
from magpie.api.endpoint import Access, Endpoint
from magpie.api.http import ok_data
from magpie.api.routes._shared import data_schema, props
from magpie.api.schema import ChannelId, Field, IntOrString, Object, String, Uid, request
from magpie.config import Settings
from magpie.core.access import Caller
from magpie.errors import BadRequest, NotFound, PayloadTooLarge
from magpie.files.sniff import INLINE_IMAGES
from magpie.store.interface import FileRecord

__all__ = ["FILE_MEDIA", "endpoints"]

#: Longest file name kept.
MAX_NAME = 255
#: What a download may be (the documented media types).
FILE_MEDIA = ",".join([*INLINE_IMAGES.values(), "application/octet-stream", "*/*"])
_CACHE = "private, max-age=31536000, immutable"
_CSP = "default-src 'none'; sandbox"


@request
class UploadQuery:
    """``POST /file/upload`` (query string; the body is the file)."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the uploader (optional with a user token)"
    )
    channel_id: str = Field(ChannelId(), doc="the peer uid for person channels")
    channel_type: int = Field(IntOrString(1, 12))
    name: str = Field(String(MAX_NAME), default="", doc="the file's name, shown to members")


@request
class DownloadQuery:
    """``GET /file/{file_id}``."""

    login_uid: str = Field(
        Uid(allow_empty=True), default="", doc="the reader (optional with a user token)"
    )


UPLOAD = Object.of(UploadQuery)
DOWNLOAD = Object.of(DownloadQuery)


def _declared_size(request: Request) -> int:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isascii() and declared.isdigit() else 0


async def upload(ctx: ApiContext, request: Request, req: UploadQuery) -> Response:
    """Keep an upload for the channel's members."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    if not caller.uid:
        raise BadRequest("login_uid is required with the business key", field="login_uid")
    channel_id = await ctx.access.readable_channel(caller, req.channel_id, req.channel_type)
    files = ctx.conv.files
    if _declared_size(request) > files.max_bytes:
        raise PayloadTooLarge(f"a file is at most {files.max_bytes} bytes")
    name = req.name or "file"
    record = await files.upload(caller.uid, channel_id, req.channel_type, name, request.stream())
    return ok_data(_resp(record))


def _resp(r: FileRecord) -> dict[str, Any]:
    return {
        "file_id": r.file_id,
        "url": f"/file/{r.file_id}",
        "name": r.name,
        "size": r.size,
        "content_type": r.content_type,
        "width": r.width,
        "height": r.height,
        "sha256": r.sha256,
    }


async def _readable(ctx: ApiContext, caller: Caller, record: FileRecord | None) -> FileRecord:
    if record is None:
        raise NotFound("no such file", field="file_id")
    if not caller.business:
        member = await ctx.access.is_member(record.channel_id, record.channel_type, caller.uid)
        if not member:
            raise NotFound("no such file", field="file_id")
    return record


async def download(ctx: ApiContext, request: Request, req: DownloadQuery) -> Response:
    """The file's bytes, for the members of its channel."""
    caller = await require_user_or_token(request, ctx.access, req.login_uid, field="login_uid")
    file_id = str(request.path_params.get("file_id", ""))
    record = await _readable(ctx, caller, await ctx.conv.files.get(file_id))
    etag = f'"{record.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": _CACHE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": _CSP,
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    path = ctx.conv.files.path(record)
    if path is None:
        raise NotFound("the file's bytes are gone", field="file_id")
    inline = record.content_type in INLINE_IMAGES.values()
    disposition = "inline" if inline else "attachment"
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(record.name)}"
    return FileResponse(path, media_type=record.content_type, headers=headers)


def endpoints(_: Settings) -> list[Endpoint[Any]]:
    """The file routes."""
    uploaded = props(
        file_id="string",
        url="string",
        name="string",
        size="integer",
        content_type="string",
        width="integer",
        height="integer",
        sha256="string",
    )
    return [
        Endpoint(
            "POST",
            "/file/upload",
            "Upload a file (the body) for a channel's members",
            Access.USER,
            upload,
            query=UPLOAD,
            raw_body="application/octet-stream",
            response=data_schema(uploaded),
            tag="conversation",
            errors=((413, "above upload_max_bytes"),),
        ),
        Endpoint(
            "GET",
            "/file/{file_id}",
            "Download a file (members of its channel)",
            Access.USER,
            download,
            query=DOWNLOAD,
            response={"type": "string", "format": "binary"},
            raw_response=FILE_MEDIA,
            tag="conversation",
            errors=((404, "no such file for this caller"), (304, "not modified (If-None-Match)")),
        ),
    ]
