"""Magpie's ground-floor vocabulary: the facts every layer shares, stated once.

* :mod:`~magpie.domain.channels` — channel types, the id rules, person channels' fake ids
  (``a@b``) and how each party sees them;
* :mod:`~magpie.domain.content` — content types (text 1, CMD 99) and the payload rule (a
  UTF-8 JSON object with an integer ``type``);
* :mod:`~magpie.domain.ext` — the value types of message extensions (state, fields, actor,
  decisions, operation-log records, the update result), their JSON row shape and the
  apply-if-newer rule;
* :mod:`~magpie.domain.jobs` — durable jobs (the outbox of webhooks and card deadlines):
  what is enqueued, claimed, retried and dead-lettered.

Every layer may import this package — protocol excepted, which needs none of it — the
server's store, core, ext, API and cards as well as the Python SDK. It therefore imports
**nothing but the standard library** (an import-linter contract): its rules report problems
as plain strings or ``ValueError``, and each layer raises them in its own error type.

This module imports none of its submodules, so importing one loads only that one.
"""

__all__: list[str] = []
