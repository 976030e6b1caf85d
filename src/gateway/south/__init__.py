"""south."""
