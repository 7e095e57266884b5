"""magpie.client."""
