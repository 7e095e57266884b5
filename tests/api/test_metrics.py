"""``/metrics`` of a real node: the families an operator needs, no ``_created`` doubles, and
the Grafana dashboard in ``docs/`` built only from names the node exports."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from magpie.app import Node
from tests.api.ext_support import send, update
from tests.support.nodes import add_user, connect, make_group, time_scale

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


async def _scrape(http: httpx.AsyncClient) -> str:
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, frozenset(labels.items())), 0.0)


def _exported_names(text: str) -> set[str]:
    """Every sample name the exposition declares (also for families without samples yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(s.name for s in family.samples)
    return names


async def test_no_created_series_and_process_collectors(http: httpx.AsyncClient) -> None:
    await http.post("/message/send", json={})  # something counted
    text = await _scrape(http)
    assert "_created" not in text
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert name in _exported_names(text), name


async def test_http_requests_by_route_template_and_status(http: httpx.AsyncClient) -> None:
    await http.get("/cards/123", params={"uid": "a"})
    await http.get("/cards/456", params={"uid": "a"})
    await http.get(f"/scan/{uuid.uuid4().hex}")
    text = await _scrape(http)
    assert _value(text, "magpie_http_requests_total", method="GET", route="/cards/{message_id}",
                  status="404") == 2  # fmt: skip
    assert _value(text, "magpie_http_requests_total", method="GET", route="unmatched",
                  status="404") == 1  # fmt: skip
    assert "/cards/123" not in text and "/scan/" not in text
    count = _value(
        text,
        "magpie_http_request_duration_seconds_count",
        method="GET",
        route="/cards/{message_id}",
    )
    assert count == 2


async def test_gateway_traffic_sends_deliveries_and_acks(
    node: Node, http: httpx.AsyncClient
) -> None:
    before = await _scrape(http)
    tokens = {u: await add_user(node, u) for u in ("a", "b")}
    await make_group(node, "g", ["a", "b"])
    a = await connect(node, "a", tokens["a"])
    b = await connect(node, "b", tokens["b"])
    await a.send("g", 2, json.dumps({"type": 1, "content": "hi"}).encode())
    got = await b.messages.get()  # b acks it (auto_ack)
    assert got.packet.channel_id == "g"
    after = ""
    for _ in range(int(50 * time_scale())):  # the RECVACK is read by the node asynchronously
        after = await _scrape(http)
        if _value(after, "magpie_gateway_recvacks_total", transport="ws") >= 1:
            break
    delta = {
        key: _value(after, name, **labels) - _value(before, name, **labels)
        for key, name, labels in [
            ("in", "magpie_gateway_frames_total", {"transport": "ws", "direction": "in"}),
            ("out", "magpie_gateway_frames_total", {"transport": "ws", "direction": "out"}),
            ("bytes_in", "magpie_gateway_bytes_total", {"transport": "ws", "direction": "in"}),
            ("bytes_out", "magpie_gateway_bytes_total", {"transport": "ws", "direction": "out"}),
            ("acks", "magpie_gateway_recvacks_total", {"transport": "ws"}),
            ("sent", "magpie_messages_total", {"origin": "client"}),
            ("delivered", "magpie_deliveries_total", {}),
        ]
    }
    assert delta["in"] >= 4  # 2 CONNECTs, the SEND, the RECVACK
    assert delta["out"] >= 4  # 2 CONNACKs, the SENDACK, the RECV
    assert delta["bytes_in"] > delta["in"] and delta["bytes_out"] > delta["out"]
    assert delta["acks"] == 1 and delta["sent"] == 1 and delta["delivered"] == 1
    assert _value(after, "magpie_connections") == 2
    await a.close()
    await b.close()


async def test_extension_changes_and_card_actions_by_result(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_group(node, "g", ["alice", "bob"])
    message_id = await send(http, "alice", "g")
    assert (await update(http, message_id, expected_version=0, status="x")).status_code == 200
    assert (await update(http, message_id, expected_version=0, status="y")).status_code == 409
    card = {"type": "vote@1", "title": "t", "options": ["a", "b"]}
    r = await http.post(
        "/cards", json={"uid": "alice", "channel_id": "g", "channel_type": 2, "card": card}
    )
    card_id = r.json()["message_id_str"]
    vote = {"uid": "bob", "action": "vote", "params": {"options": [0]}, "base_version": 1}
    for action_id in ("v1", "v1"):  # the repeat is a duplicate
        r = await http.post(f"/cards/{card_id}/actions", json={**vote, "action_id": action_id})
        assert r.status_code == 200, r.text
    r = await http.post(
        f"/cards/{card_id}/actions", json={**vote, "uid": "mallory", "action_id": "m"}
    )
    assert r.status_code == 403
    text = await _scrape(http)
    assert _value(text, "magpie_ext_changes_total", result="applied") >= 2  # + card create
    assert _value(text, "magpie_ext_changes_total", result="conflict") == 1
    assert _value(text, "magpie_card_actions_total", card_type="vote@1", result="applied") == 1
    assert _value(text, "magpie_card_actions_total", card_type="vote@1", result="duplicate") == 1
    assert _value(text, "magpie_card_actions_total", card_type="vote@1", result="forbidden") == 1


async def test_queue_depths_are_read_at_scrape_time(http: httpx.AsyncClient) -> None:
    text = await _scrape(http)
    queues = {
        dict(labels)["queue"] for (name, labels) in _samples(text) if name == "magpie_queue_depth"
    }
    assert queues >= {
        "gateway_outbound_frames",
        "gateway_unacked_recvs",
        "gateway_retry_schedule",
        "store_writes",
        "ext_cmd_channels",
    }


async def test_the_dashboard_uses_only_exported_metric_names(http: httpx.AsyncClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    used = {
        name
        for expr in exprs
        for name in re.findall(r"\b((?:magpie|process|python)_[a-z_]+)\b", expr)
    }
    assert len(used) >= 20, used
    missing = used - _exported_names(await _scrape(http))
    assert not missing, f"the dashboard uses names /metrics does not export: {missing}"
