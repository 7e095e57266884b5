"""Store epochs protect the page's cache (I7): the server the page talks to moves onto another
store (a restore, a fresh install) while the page is open; what the page shows afterwards is
that store's, never a mix. And a page that holds messages before it heard any epoch treats
them as stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from magpie.cli import _seed_demo
from tests.api.helpers import text
from tests.client.support import Proxy
from tests.support.nodes import api, running_node
from tests.web.conftest import Ui

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the module's shared browser

GROUP = ("demo-group", 2)


async def test_a_replaced_store_replaces_what_the_page_shows(
    tmp_path: Path, browser: Browser
) -> None:
    async with Proxy(0) as ws, Proxy(0) as http:
        demo = {"demo_ui": True, "demo_login": True, "ws_public_url": ws.url}
        async with (
            running_node(tmp_path / "old", **demo) as old,
            running_node(tmp_path / "new", **demo) as new,
        ):
            for node in (old, new):
                await _seed_demo(node)
            ws.upstream, http.upstream = old.ws_port, old.api_port
            ui = Ui(browser, f"http://127.0.0.1:{http.port}")
            try:
                alice = await ui.login("alice")
                await alice.open(*GROUP)
                for i in range(3):
                    await alice.send_text(f"only-in-the-old-store-{i}")
                token = await alice.page.evaluate("window.magpie.session.token")
                async with api(new) as http_new:
                    # The new store knows alice's page token (a restored store would) and
                    # has a message of bob's that the old one never had.
                    body = {"uid": "alice", "token": token, "device_flag": 1, "device_level": 0}
                    assert (await http_new.post("/user/token", json=body)).status_code == 200
                    body = {"from_uid": "bob", "channel_id": GROUP[0], "channel_type": 2,
                            "payload": text("only in the new store")}  # fmt: skip
                    assert (await http_new.post("/message/send", json=body)).status_code == 200
                ws.upstream, http.upstream = new.ws_port, new.api_port
                ws.cut()
                http.cut()
                await expect(alice.message_with_text("only in the new store")).to_be_visible(
                    timeout=alice.ms()
                )
                for i in range(3):
                    await expect(
                        alice.message_with_text(f"only-in-the-old-store-{i}")
                    ).to_have_count(0, timeout=alice.ms())
                epoch = await alice.page.evaluate("window.magpie.api.epoch")
                assert epoch == new.store.epoch != old.store.epoch
                welcome = alice.message_with_text("Welcome to the Magpie demo group!")
                await expect(welcome).to_have_count(1)  # the new store's, shown once
            finally:
                errors = await ui.close("test_a_replaced_store_replaces_what_the_page_shows")
            assert not errors, errors


async def test_messages_held_before_any_epoch_are_dropped_at_the_first(
    tmp_path: Path, browser: Browser
) -> None:
    async with running_node(tmp_path, demo_ui=True, demo_login=True) as node:
        await _seed_demo(node)
        ui = Ui(browser, f"http://127.0.0.1:{node.api_port}")
        try:
            alice = await ui.login("alice")
            await alice.open(*GROUP)
            welcome = alice.message_with_text("Welcome to the Magpie demo group!")
            await expect(welcome).to_have_count(1)
            # The page forgets the epoch while it holds messages (as if they had arrived
            # before any answer named one); the next answer's epoch must drop them.
            await alice.page.evaluate(
                """() => {
                    const app = window.magpie;
                    const state = app.cache.get(app.openChannel);
                    const ghost = [...state.messages.values()][0];
                    const copy = Object.create(Object.getPrototypeOf(ghost));
                    state.messages.set('999',
                        Object.assign(copy, ghost, {messageID: '999', messageSeq: 999}));
                    app.api.epoch = '';
                    return app.api.post('/conversation/sync', {uid: app.me, version: 0});
                }"""
            )
            await alice.page.wait_for_function(
                "() => !window.magpie.cache.get(window.magpie.openChannel).messages.has('999')"
                " && window.magpie.cache.get(window.magpie.openChannel).loaded === true",
                timeout=alice.ms(),
            )
            await expect(welcome).to_have_count(1)
            assert await alice.page.evaluate("window.magpie.api.epoch") == node.store.epoch
        finally:
            errors = await ui.close("test_messages_held_before_any_epoch_are_dropped_at_the_first")
        assert not errors, errors
