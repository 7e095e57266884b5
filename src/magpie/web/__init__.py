"""magpie.web."""
