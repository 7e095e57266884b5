"""magpie.core."""
