"""magpie.ext."""
