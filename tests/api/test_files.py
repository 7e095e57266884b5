"""Files and images (``docs/conversation.md``, item 7): uploads for members, sniffed types,
size limits, downloads for members only with caching headers, image/file messages checked
against their uploads."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from magpie.app import Node
from magpie.protocol.packets import ReasonCode
from tests.api.conv_support import GROUP, group, online, user_client, users
from tests.api.helpers import b64
from tests.support.nodes import api, running_node

BOTH_STORES = True


def png(width: int = 3, height: int = 2) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


async def upload(
    c: httpx.AsyncClient, data: bytes, channel: str = "g1", **query: str
) -> httpx.Response:
    params = {"channel_id": channel, "channel_type": str(GROUP), **query}
    return await c.post(
        "/file/upload", params=params, content=data, headers={"Content-Type": "image/png"}
    )


def files_on_disk(node: Node) -> list[Path]:
    root = Path(node.settings.data_dir) / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_upload_and_download_for_members(node: Node) -> None:
    tokens = await users(node, "alice", "bob", "eve")
    await group(node, "g1", "alice", "bob")
    image = png(4, 3)
    async with user_client(node, tokens["bob"]) as bob:
        r = await upload(bob, image, name="red dot.png")
        assert r.status_code == 200, r.text
        data = r.json()["data"]
    assert data == {
        "file_id": data["file_id"],
        "url": f"/file/{data['file_id']}",
        "name": "red dot.png",
        "size": len(image),
        "content_type": "image/png",
        "width": 4,
        "height": 3,
        "sha256": data["sha256"],
    }
    async with user_client(node, tokens["alice"]) as alice:
        got = await alice.get(data["url"])
        assert got.status_code == 200 and got.content == image
        assert got.headers["content-type"] == "image/png"
        assert got.headers["etag"] == f'"{data["sha256"]}"'
        assert got.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"] == "inline; filename*=UTF-8''red%20dot.png"
        cached = await alice.get(data["url"], headers={"If-None-Match": got.headers["etag"]})
        assert cached.status_code == 304 and cached.content == b""
    async with user_client(node, tokens["eve"]) as eve:
        r = await eve.get(data["url"])
        assert r.status_code == 404 and r.content != image
        assert (await eve.get("/file/" + "0" * 32)).status_code == 404
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as anon:
        assert (await anon.get(data["url"])).status_code == 401
    async with api(node) as biz:
        assert (await biz.get(data["url"])).content == image, "the business key may read"


async def test_the_type_is_sniffed_not_believed(node: Node) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    fake = b"<svg onload=alert(1)>not a png</svg>"
    pdf = b"%PDF-1.4\n" + b"x" * 100
    async with user_client(node, tokens["alice"]) as alice:
        text = (await upload(alice, fake, name="x.png")).json()["data"]
        doc = (await upload(alice, pdf, name="doc.pdf")).json()["data"]
        broken = (await upload(alice, png()[:30], name="cut.png")).json()["data"]
        got = await alice.get(text["url"])
    assert (text["content_type"], text["width"]) == ("application/octet-stream", 0)
    assert doc["content_type"] == "application/pdf"
    assert broken["content_type"] == "application/octet-stream", "a cut image is no image"
    assert got.headers["content-type"].startswith("application/octet-stream")
    assert got.headers["content-disposition"].startswith("attachment;")


async def test_same_bytes_are_kept_once(node: Node) -> None:
    tokens = await users(node, "alice")
    await group(node, "g1", "alice")
    async with user_client(node, tokens["alice"]) as alice:
        a = (await upload(alice, png())).json()["data"]
        b = (await upload(alice, png())).json()["data"]
    assert a["sha256"] == b["sha256"] and a["file_id"] != b["file_id"]
    assert [p.name for p in files_on_disk(node)] == [a["sha256"]]


async def test_outsiders_cannot_upload(node: Node) -> None:
    tokens = await users(node, "alice", "eve")
    await group(node, "g1", "alice")
    async with user_client(node, tokens["eve"]) as eve:
        r = await upload(eve, png())
        assert r.status_code == 403
    async with api(node) as biz:
        r = await upload(biz, png())
        assert (r.status_code, r.json()["field"]) == (400, "login_uid")
        assert (await upload(biz, png(), login_uid="alice")).status_code == 200
    assert len(files_on_disk(node)) == 1


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path, upload_max_bytes=1000) as n:
        yield n


async def test_the_size_limit_at_n_and_n_plus_1(small: Node) -> None:
    tokens = await users(small, "alice")
    await group(small, "g1", "alice")

    async def chunked(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 100):
            yield b"y" * 100
        yield b"y" * (size % 100)

    async with user_client(small, tokens["alice"]) as alice:
        assert (await upload(alice, b"x" * 1000)).status_code == 200
        r = await upload(alice, b"x" * 1001)
        assert (r.status_code, r.json()["code"]) == (413, "too_large")
        params = {"channel_id": "g1", "channel_type": "2"}
        r = await alice.post("/file/upload", params=params, content=chunked(1001))
        assert r.status_code == 413, "without Content-Length: counted while streaming"
        assert (
            await alice.post("/file/upload", params=params, content=chunked(999))
        ).status_code == 200
    kept = files_on_disk(small)
    assert len(kept) == 2 and all(p.parent.name != "tmp" for p in kept), "nothing half-written"


async def test_image_and_file_messages_name_uploads_of_their_channel(node: Node) -> None:
    tokens = await users(node, "alice", "bob")
    await group(node, "g1", "alice", "bob")
    await group(node, "g2", "alice", "bob")
    async with user_client(node, tokens["alice"]) as alice:
        image = (await upload(alice, png(5, 7), name="p.png")).json()["data"]
        other = (await upload(alice, png(), channel="g2")).json()["data"]
        doc = (await upload(alice, b"%PDF-1.4 hello", name="d.pdf")).json()["data"]
    async with online(node, tokens, "alice", "bob") as (a, b):
        ack = await a.send(
            "g1", GROUP, json.dumps({"type": 2, "url": image["url"], "width": 1}).encode()
        )
        assert ack.reason_code == ReasonCode.SUCCESS
        shown = json.loads((await b.messages.get()).payload)
        assert (shown["width"], shown["height"], shown["size"], shown["name"]) == (
            5,
            7,
            image["size"],
            "p.png",
        )
        refused = [
            {"type": 2, "url": other["url"]},  # another channel's upload
            {"type": 2, "url": doc["url"]},  # not an image
            {"type": 8, "url": "/file/" + "f" * 32},  # no such upload
        ]
        for content in refused:
            ack = await a.send("g1", GROUP, json.dumps(content).encode())
            assert ack.reason_code == ReasonCode.PAYLOAD_DECODE_ERROR, content
        ack = await a.send(
            "g1", GROUP, json.dumps({"type": 8, "url": "http://127.0.0.1" + doc["url"]}).encode()
        )
        assert ack.reason_code == ReasonCode.SUCCESS, "an absolute URL of the same file"
        outside = await a.send(
            "g1", GROUP, json.dumps({"type": 2, "url": "https://example.com/x.png"}).encode()
        )
        assert outside.reason_code == ReasonCode.SUCCESS, "other URLs are the business's"
    async with api(node) as biz:
        body = {"from_uid": "alice", "channel_id": "g1", "channel_type": GROUP}
        r = await biz.post(
            "/message/send", json={**body, "payload": b64({"type": 8, "url": other["url"]})}
        )
        assert (r.status_code, r.json()["reason"]) == (400, 9)
