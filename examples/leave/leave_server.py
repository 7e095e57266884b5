"""A leave-request card for Magpie: the whole business server (docs/cards.md, "Make your own
card"). Registers leave_type.json, then decides every click Magpie forwards to it.

    python leave_server.py [PORT [GROUP]]   # GROUP: also post alice's request there (bob decides)
"""

import datetime
import hashlib
import hmac
import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]

API = os.environ.get("MAGPIE_API", "http://127.0.0.1:5001")
KEY = os.environ.get("MAGPIE_API_KEY") or pathlib.Path("var/demo/api_key").read_text().strip()
SECRET = os.environ.get("MAGPIE_WEBHOOK_SECRET") or KEY  # Magpie signs with this
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8099


def doc(s: Json, status: str, who: str = "") -> Json:
    fields = [{"label": k.capitalize(), "value": str(s[k])} for k in ("start", "end", "days")]
    blocks = [
        {"type": "header", "text": f"Leave request: {status}"},
        {"type": "fields", "fields": fields},
        {"type": "text", "text": s["reason"], "plain": True},
    ]
    if status == "pending":
        blocks.append(
            {
                "type": "form",
                "id": "decide",
                "elements": [
                    {"type": "input", "name": "comment", "label": "Comment"},
                    {"type": "button", "action": "approve", "label": "Approve"},
                    {
                        "type": "button",
                        "action": "reject",
                        "label": "Reject",
                        "style": "danger",
                        "confirm": {"title": "Reject this request?"},
                    },
                ],
            }
        )
    else:
        blocks.append({"type": "people", "people": [{"uid": who, "state": status}]})
    return {"version": 1, "blocks": blocks}


def decide(ev: Json) -> Json:
    p, card = ev["params"], ev["card"]
    if ev["action"] == "submit":
        start, end = (datetime.date.fromisoformat(p[k]) for k in ("start", "end"))
        if end < start:
            return {"ephemeral": {"text": "The end date is before the start date."}}
        s = {
            "start": p["start"],
            "end": p["end"],
            "days": (end - start).days + 1,
            "reason": p["reason"],
        }
        manager = ", ".join(card["listed"]) or "nobody"
        return {
            "state": s,
            "status": "pending",
            "doc": doc(s, "pending"),
            "ephemeral": {"text": f"Sent to {manager} for approval."},
        }
    status = "approved" if ev["action"] == "approve" else "rejected"
    return {
        "state": {"comment": p.get("comment", "")},
        "status": status,
        "doc": doc(card["state"], status, ev["actor"]["uid"]),
    }


class Callback(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers.get("X-Magpie-Timestamp", "")
        signature = self.headers.get("X-Magpie-Signature", "")
        mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        ok = fresh and hmac.compare_digest("sha256=" + mac, signature)
        answer = json.dumps(decide(json.loads(body)) if ok else {"error": "bad signature"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def post(path: str, body: Json) -> str:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    req = urllib.request.Request(f"{API}{path}", json.dumps(body).encode(), headers)  # noqa: S310
    with urllib.request.urlopen(req) as answer:  # noqa: S310
        return str(answer.read().decode())


if __name__ == "__main__":
    leave = json.loads((pathlib.Path(__file__).parent / "leave_type.json").read_text())
    leave["callback_url"] = f"http://127.0.0.1:{PORT}/leave"
    try:
        print(post("/card-types", leave), flush=True)
    except urllib.error.HTTPError as refused:  # a registration is immutable: 409 type_exists
        print(f"{refused.code}: {refused.read().decode()}", file=sys.stderr)
        sys.exit(
            "leave@1 is registered already with another callback URL (an earlier run on "
            "another port): run on that port, or give leave_type.json a new version"
            if refused.code == 409
            else "the registration was refused"
        )
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Callback)
    if len(sys.argv) > 2:  # a request in the group: alice asks, bob (her manager) decides
        card = {"type": "leave@1", "listed": ["bob"]}
        body = {"uid": "alice", "channel_id": sys.argv[2], "channel_type": 2, "card": card}
        print(json.loads(post("/cards", body))["message_id_str"], flush=True)
    server.serve_forever()
