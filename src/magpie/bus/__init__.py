"""magpie.bus."""
