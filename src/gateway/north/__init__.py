"""north."""
