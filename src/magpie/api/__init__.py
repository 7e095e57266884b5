"""magpie.api."""
