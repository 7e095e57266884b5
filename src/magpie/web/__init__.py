"""The browser demo: its static files and the demo data set.

``static/`` holds the page (``index.html``, ``app.css``, ``conv.css``, committed) and
``app.js``, the esbuild bundle of ``web/src`` built with the official WuKongIM JS SDK
(``make web``; not committed, but the build backend puts it into every sdist and wheel). The
HTTP API serves them at ``/`` and ``/static/*`` when the ``demo_ui`` setting is on
(``magpie.api.routes.demo``).

The demo data set (users, group) lives here so that ``magpie demo`` seeds exactly the users
``GET /demo/users`` lists.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_GROUP", "DEMO_OWNER", "DEMO_USERS", "STATIC_DIR"]

#: Directory of the page's static files.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The users ``magpie demo`` seeds (token ``demo-<uid>``) and ``/demo/login`` accepts.
DEMO_USERS = ("alice", "bob", "carol", "dave")
#: The group channel (type 2) every demo user is a member of.
DEMO_GROUP = "demo-group"
#: The demo group's owner (role 1): may mention everybody and revoke any message there.
DEMO_OWNER = "alice"
