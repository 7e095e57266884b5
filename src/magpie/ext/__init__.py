"""Message extensions: live, versioned state on messages (ARCHITECTURE: ext; I6, I7).

The value types (states, fields, decisions, operation-log records) and the sync-row shape
are the shared vocabulary's (:mod:`magpie.domain.ext`). Modules here:

* :mod:`~magpie.ext.hlc` — the hybrid logical clock of last-writer-wins changes;
* :mod:`~magpie.ext.patch` — JSON merge patch (RFC 7396) and the size limits;
* :mod:`~magpie.ext.changes` — compare-and-set, last-writer-wins, revoke and edit decisions;
* :mod:`~magpie.ext.rejection` — a rejected change as an API error (one mapping);
* :mod:`~magpie.ext.notify` — coalesced ``syncMessageExtra`` CMDs after commit;
* :mod:`~magpie.ext.service` — :class:`~magpie.ext.service.ExtService`, the update primitive,
  sync and the operation log.
"""

__all__: list[str] = []
