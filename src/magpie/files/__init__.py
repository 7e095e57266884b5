"""Files and images sent in messages (``docs/conversation.md``, item 7): where their bytes
live (:mod:`magpie.files.storage`, a small interface so an object store can be added beside
the local disk) and what they are (:mod:`magpie.files.sniff`, from the bytes, never from what
a client says)."""

__all__: list[str] = []
