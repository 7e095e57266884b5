"""magpie.store."""
