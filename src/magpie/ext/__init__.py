"""Message extensions: live, versioned state on messages (ARCHITECTURE: ext; I6, I7).

Modules:

* :mod:`~magpie.ext.merge` — the pure apply-if-newer rule and the sync-row shape, shared with
  the Python SDK (standard library only);
* :mod:`~magpie.ext.hlc` — the hybrid logical clock of last-writer-wins changes;
* :mod:`~magpie.ext.patch` — JSON merge patch (RFC 7396) and the size limits;
* :mod:`~magpie.ext.model` — states, decisions, operation-log records;
* :mod:`~magpie.ext.changes` — compare-and-set, last-writer-wins, revoke and edit decisions;
* :mod:`~magpie.ext.notify` — coalesced ``syncMessageExtra`` CMDs after commit;
* :mod:`~magpie.ext.service` — :class:`~magpie.ext.service.ExtService`, the update primitive,
  sync and the operation log.

This package module imports none of them, so that ``import magpie.ext.merge`` (what the
client SDK may do) loads nothing but the standard library.
"""

__all__: list[str] = []
