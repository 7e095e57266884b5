"""magpie.gateway."""
