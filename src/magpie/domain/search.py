"""Search (``docs/conversation.md``, item 8): what a keyword means.

A keyword is split into words (letters and digits; everything else separates them, as the
stores' tokenizers do); a message matches when its text has, for every word, a word that
*starts with* it. At most :data:`MAX_TERMS` words of at most :data:`MAX_TERM_CHARS`
characters count; the stores turn the words into their own query syntax, so no character of
the keyword ever reaches it unescaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_TERMS", "MAX_TERM_CHARS", "SearchQuery", "search_terms"]

#: Most words of a keyword that count.
MAX_TERMS = 8
#: Longest word (characters); a longer one is cut.
MAX_TERM_CHARS = 64

_WORD = re.compile(r"[^\W_]+")


def search_terms(keyword: str) -> tuple[str, ...]:
    """The words of ``keyword`` (lower-cased, first :data:`MAX_TERMS`); ``ValueError`` when it
    has none."""
    words = [w.lower()[:MAX_TERM_CHARS] for w in _WORD.findall(keyword)]
    if not words:
        raise ValueError("keyword needs at least one letter or digit")
    return tuple(dict.fromkeys(words))[:MAX_TERMS]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search of one user's readable messages: the words, optionally one channel (storage
    id), messages older than ``before_message_id`` (0: the newest), at most ``limit``."""

    terms: tuple[str, ...]
    channel_id: str = ""
    channel_type: int = 0
    before_message_id: int = 0
    limit: int = 20
