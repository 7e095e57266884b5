"""magpie.cards."""
