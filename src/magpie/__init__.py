"""Magpie: an instant-messaging server whose messages carry live, versioned state.

It speaks the WuKongIM binary protocol (v2) so the official WuKongIM clients connect to it
unchanged, and adds a versioned message-extension store, compare-and-set updates, an operation
log and interactive cards on top.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
